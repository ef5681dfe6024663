//! `virsh console`: the pty QEMU gives serial port 0, opened on the host
//! side in raw mode as libvirt does (`virFDStreamOpenPTY`), one client at a
//! time ([`migrated_core::console::ConsoleLocks`]).
//!
//! The device is chosen as `qemuDomainOpenConsole` chooses it: by alias
//! among consoles, then serial ports; without a name the first console,
//! else the first serial port.

use std::os::fd::OwnedFd;

use migrated_core::console::{Console, CONSOLE_FORCE, CONSOLE_SAFE};
use migrated_core::domain::DomainRef;
use migrated_core::flags::check_flags;
use migrated_core::xml::{CharDevice, CharType, DomainDef};
use migrated_core::{Error, Result};
use rustix::fs::{Mode, OFlags};
use tokio::net::unix::pipe;

use super::QemuDriver;

const OP: &str = "virDomainOpenConsole";

impl QemuDriver {
    pub(super) async fn open_console_impl(
        &self,
        dom: &DomainRef,
        dev_name: Option<&str>,
        flags: u32,
    ) -> Result<Console> {
        check_flags(
            OP,
            u64::from(flags),
            u64::from(CONSOLE_SAFE | CONSOLE_FORCE),
        )?;
        let path = self.read(|r| {
            let live = r
                .get(dom)?
                .live
                .as_ref()
                .ok_or_else(|| Error::invalid("domain is not running"))?;
            pty_path(&live.def, dev_name)
        })?;
        let claim = self
            .shared
            .consoles
            .claim(&path, flags & CONSOLE_FORCE != 0)?;
        let fd = open_raw(&path)?;
        let output = fd
            .try_clone()
            .map_err(|e| Error::system(format!("duplicate {path}"), e))?;
        let output = pipe::Receiver::from_owned_fd_unchecked(output)
            .map_err(|e| Error::system(format!("watch {path}"), e))?;
        let input = pipe::Sender::from_owned_fd_unchecked(fd)
            .map_err(|e| Error::system(format!("watch {path}"), e))?;
        Ok(Console {
            output: Box::pin(output),
            input: Box::pin(input),
            claim,
        })
    }
}

/// The host path of the pty behind `dev_name` (see the module doc).
fn pty_path(def: &DomainDef, dev_name: Option<&str>) -> Result<String> {
    let devices = &def.devices;
    let by_alias = |c: &&CharDevice| c.info.alias.as_deref() == dev_name;
    let chr = match dev_name {
        Some(_) => devices
            .consoles
            .iter()
            .find(by_alias)
            .or_else(|| devices.serials.iter().find(by_alias)),
        None => devices.consoles.first().or(devices.serials.first()),
    };
    let Some(chr) = chr else {
        return Err(Error::internal(format!(
            "cannot find character device {}",
            dev_name.unwrap_or("<null>")
        )));
    };
    let path = chr.source.as_ref().and_then(|s| s.path.clone());
    match (chr.kind, path) {
        (CharType::Pty, Some(path)) => Ok(path),
        _ => Err(Error::internal(format!(
            "character device {} is not using a PTY",
            dev_name.or(chr.info.alias.as_deref()).unwrap_or("<null>")
        ))),
    }
}

/// Opens the pty's host side non-blocking and puts it in raw mode, so
/// the guest's bytes pass unchanged in both directions.
fn open_raw(path: &str) -> Result<OwnedFd> {
    let sys = |action: &str, e: rustix::io::Errno| {
        Error::system(format!("{action} {path}"), std::io::Error::from(e))
    };
    let fd = rustix::fs::open(
        path,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| sys("open", e))?;
    let mut termios = rustix::termios::tcgetattr(&fd).map_err(|e| sys("read the mode of", e))?;
    termios.make_raw();
    rustix::termios::tcsetattr(&fd, rustix::termios::OptionalActions::Now, &termios)
        .map_err(|e| sys("set raw mode on", e))?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(devices: &str) -> DomainDef {
        DomainDef::parse(&format!(
            "<domain type='qemu'><name>c</name><memory>65536</memory>\
             <os><type>hvm</type></os><devices>{devices}</devices></domain>"
        ))
        .expect("valid XML")
    }

    #[test]
    fn the_console_is_found_by_alias_or_first_and_must_be_a_pty() {
        let d = def(
            "<serial type='pty'><source path='/dev/pts/7'/><alias name='serial0'/></serial>\
             <console type='pty'><source path='/dev/pts/7'/><alias name='serial0'/></console>",
        );
        assert_eq!(pty_path(&d, None).expect("first console"), "/dev/pts/7");
        assert_eq!(pty_path(&d, Some("serial0")).expect("alias"), "/dev/pts/7");
        let e = pty_path(&d, Some("parallel0")).expect_err("no such device");
        assert_eq!(
            e.to_string(),
            "internal error: cannot find character device parallel0"
        );
        let e = pty_path(&def(""), None).expect_err("no device");
        assert_eq!(
            e.to_string(),
            "internal error: cannot find character device <null>"
        );
        let file =
            def("<serial type='file'><source path='/tmp/s.log'/><alias name='serial0'/></serial>");
        let e = pty_path(&file, None).expect_err("not a pty");
        assert_eq!(
            e.to_string(),
            "internal error: character device serial0 is not using a PTY"
        );
    }
}
