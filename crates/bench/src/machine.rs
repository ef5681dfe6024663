//! A one-paragraph description of the machine and versions, for the top
//! of every result.

use std::process::Command;

fn sh(cmd: &str) -> String {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Markdown lines naming CPU, cores, memory, kernel, OS, and the libvirt,
/// QEMU and python3-libvirt package versions.
pub fn describe() -> String {
    let cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = sh("free -g | awk '/Mem:/{print $2\" GiB\"}'");
    let kernel = sh("uname -r");
    let os = sh(". /etc/os-release 2>/dev/null; echo \"$PRETTY_NAME\"");
    let pkg = |p: &str| {
        let v = sh(&format!("dpkg-query -W -f='${{Version}}' {p} 2>/dev/null"));
        if v.is_empty() {
            "not installed".to_owned()
        } else {
            v
        }
    };
    let rustc = sh("rustc --version");
    format!(
        "- machine: {cpu}, {cores} cores, {mem}, kernel {kernel}, {os}\n\
         - libvirt-daemon {}, qemu-system-x86 {}, python3-libvirt {}; {rustc}\n\
         - date: {}\n",
        pkg("libvirt-daemon"),
        pkg("qemu-system-x86"),
        pkg("python3-libvirt"),
        sh("date -u '+%Y-%m-%d %H:%M UTC'"),
    )
}
