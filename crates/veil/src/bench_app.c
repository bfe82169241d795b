/* The benchmarks' image app: a static binary run FROM scratch. It writes "Hello, ARGS!" as its
 * result, like the other trivial apps of `veil bench`. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    const char *out = getenv("IEXEC_OUT");
    char path[4096];
    if (!out) return 2;
    snprintf(path, sizeof path, "%s/result.txt", out);
    FILE *f = fopen(path, "w");
    if (!f) return 3;
    fprintf(f, "Hello,");
    for (int i = 1; i < argc; i++) fprintf(f, " %s", argv[i]);
    fprintf(f, "!");
    fclose(f);
    snprintf(path, sizeof path, "%s/computed.json", out);
    f = fopen(path, "w");
    if (!f) return 3;
    fprintf(f, "{\"deterministic-output-path\":\"%s/result.txt\"}", out);
    fclose(f);
    return 0;
}
