//! Encrypts a result zip for a beneficiary's public key, as a Veil enclave does:
//! `cargo run -p veil-protect --example encrypt_result -- RESULT.zip PUBLIC.pem OUT.zip`
//! (used by `tools/check_result_with_iexec_sdk.sh` to check the format with iExec's own SDK).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [zip, public, out] = args.as_slice() else {
        return Err("usage: encrypt_result RESULT.zip PUBLIC.pem OUT.zip".into());
    };
    let enc = veil_protect::result::encrypt_result(&std::fs::read(zip)?, &std::fs::read_to_string(public)?)?;
    std::fs::write(out, enc)?;
    Ok(())
}
