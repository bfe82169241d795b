"""{{name}}: an iApp for Veil (and iExec). Change `compute`; keep the rest.

What a worker gives the app:
  args             sys.argv[1:]
  protected data   $IEXEC_IN/$IEXEC_DATASET_FILENAME (TEE tasks): a DataProtector zip, or any file
  input files      $IEXEC_IN/$IEXEC_INPUT_FILE_NAME_1 … _$IEXEC_INPUT_FILES_NUMBER
  secrets          $IEXEC_REQUESTER_SECRET_<n>, $IEXEC_APP_DEVELOPER_SECRET (TEE tasks)
What it must leave: its result files in $IEXEC_OUT, and $IEXEC_OUT/computed.json naming the file
whose content is the task's deterministic result.
"""
import json
import os
import struct
import sys
import zipfile

IEXEC_IN, IEXEC_OUT = os.environ["IEXEC_IN"], os.environ["IEXEC_OUT"]


def borsh(b):
    """A DataProtector value: string (u32 length + UTF-8), bool (1 byte), number (f64) or i128."""
    if len(b) >= 4 and struct.unpack("<I", b[:4])[0] == len(b) - 4:
        return b[4:].decode("utf-8", "replace")
    if len(b) == 1:
        return bool(b[0])
    if len(b) == 8:
        v = struct.unpack("<d", b)[0]
        return int(v) if v.is_integer() else v
    if len(b) == 16:
        return int.from_bytes(b, "little", signed=True)
    return b.hex()


def protected_data():
    name = os.environ.get("IEXEC_DATASET_FILENAME")
    if not name:
        return None
    path = os.path.join(IEXEC_IN, name)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return {n: borsh(z.read(n)) for n in z.namelist() if not n.endswith("/")}
    return {"file": "%d bytes" % os.path.getsize(path)}


def input_files():
    n = int(os.environ.get("IEXEC_INPUT_FILES_NUMBER", "0"))
    names = [os.environ["IEXEC_INPUT_FILE_NAME_%d" % i] for i in range(1, n + 1)]
    return [(f, os.path.getsize(os.path.join(IEXEC_IN, f))) for f in names]


def requester_secrets():
    """Secret lengths only: a secret's value never belongs in logs or results."""
    found = {}
    for k, v in os.environ.items():
        if k.startswith("IEXEC_REQUESTER_SECRET_"):
            found[int(k.rsplit("_", 1)[1])] = len(v)
    return dict(sorted(found.items()))


def compute(args, data, files, secrets):
    lines = ["Hello, %s!" % (" ".join(args) or "World")]
    if data is not None:
        lines.append("protected data: " + ", ".join("%s=%s" % kv for kv in sorted(data.items())))
    for name, size in files:
        lines.append("input file %s: %d bytes" % (name, size))
    for i, length in secrets.items():
        lines.append("requester secret %d: %d characters" % (i, length))
    return "\n".join(lines) + "\n"


def main():
    args = sys.argv[1:]
    print("{{name}} starts with %d argument(s)" % len(args))
    text = compute(args, protected_data(), input_files(), requester_secrets())
    result = os.path.join(IEXEC_OUT, "result.txt")
    with open(result, "w") as f:
        f.write(text)
    with open(os.path.join(IEXEC_OUT, "computed.json"), "w") as f:
        json.dump({"deterministic-output-path": result}, f)
    print("result written: %d bytes" % len(text.encode()))


if __name__ == "__main__":
    main()
