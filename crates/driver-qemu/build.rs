//! Builds the workload guest kernel (`guest/` at the repository root) into
//! `OUT_DIR/guest.elf` with the system's GNU binutils. The binary is never
//! committed: it is rebuilt from source whenever the source changes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let guest = manifest.join("../../guest");
    let source = guest.join("boot.s");
    let script = guest.join("link.ld");
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-changed={}", script.display());

    let object = out.join("guest.o");
    let image = out.join("guest.elf");
    run(
        "as",
        Command::new("as")
            .arg("--32")
            .arg("-o")
            .arg(&object)
            .arg(&source),
    );
    run(
        "ld",
        Command::new("ld")
            .args(["-m", "elf_i386", "-nostdlib", "-static", "-T"])
            .arg(&script)
            .arg("-o")
            .arg(&image)
            .arg(&object),
    );
    if !Path::new(&image).is_file() {
        fail(&format!("ld did not produce {}", image.display()));
    }
}

fn run(tool: &str, command: &mut Command) {
    match command.status() {
        Ok(status) if status.success() => {}
        Ok(status) => fail(&format!(
            "`{tool}` failed ({status}) while building the workload guest from guest/"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fail(&format!(
            "`{tool}` (GNU binutils) is not installed; it is needed to build the workload \
             guest kernel from guest/ (Debian: apt-get install binutils)"
        )),
        Err(e) => fail(&format!("cannot run `{tool}`: {e}")),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: migrated-driver-qemu build script: {message}");
    std::process::exit(1);
}
