//! Closed vocabularies of the domain XML (`type` attributes and the like).

use std::fmt;
use std::str::FromStr;

/// Error for a word outside a closed vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKind {
    expected: &'static [&'static str],
}

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "expected one of: {}", self.expected.join(", "))
    }
}

impl std::error::Error for UnknownKind {}

/// Declares an enum spelled in XML by fixed words, with `as_str`, `FromStr`
/// and `Display`.
macro_rules! xml_kind {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// The XML spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownKind;

            fn from_str(s: &str) -> Result<Self, UnknownKind> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(UnknownKind {
                        expected: &[$($text),+],
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl super::write::AttrValue for $name {
            fn write_value(&self, out: &mut String) -> bool {
                super::write::AttrValue::write_value(self.as_str(), out)
            }
        }
    };
}

xml_kind! {
    /// The hypervisor a domain is defined for (`<domain type=…>`).
    DomainType {
        /// QEMU with KVM acceleration.
        Kvm = "kvm",
        /// QEMU with TCG emulation.
        Qemu = "qemu",
        /// The in-process test driver.
        Test = "test",
    }
}

xml_kind! {
    /// Where a disk's data lives (`<disk type=…>`).
    DiskType {
        /// A file on the host.
        File = "file",
        /// A block device on the host.
        Block = "block",
    }
}

xml_kind! {
    /// How a disk appears to the guest (`<disk device=…>`).
    DiskDevice {
        /// A hard disk.
        Disk = "disk",
        /// A CD-ROM drive.
        Cdrom = "cdrom",
        /// A floppy drive.
        Floppy = "floppy",
    }
}

xml_kind! {
    /// How a NIC reaches the host network (`<interface type=…>`).
    InterfaceType {
        /// QEMU user-mode networking.
        User = "user",
        /// A libvirt virtual network.
        Network = "network",
        /// A host bridge.
        Bridge = "bridge",
        /// A tap device managed outside libvirt.
        Ethernet = "ethernet",
    }
}

xml_kind! {
    /// Remote display protocol (`<graphics type=…>`).
    GraphicsType {
        /// VNC.
        Vnc = "vnc",
        /// SPICE.
        Spice = "spice",
    }
}

xml_kind! {
    /// Host side of a serial port or console (`<serial type=…>`).
    CharType {
        /// A pseudo terminal.
        Pty = "pty",
        /// Output appended to a file.
        File = "file",
        /// Discarded.
        Null = "null",
        /// A unix socket.
        Unix = "unix",
        /// The emulator's stdio.
        Stdio = "stdio",
        /// A virtual console.
        Vc = "vc",
        /// A SPICE agent channel.
        Spicevmc = "spicevmc",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_name_the_alternatives() {
        assert_eq!("kvm".parse::<DomainType>(), Ok(DomainType::Kvm));
        assert_eq!(DomainType::Test.to_string(), "test");
        let err = "xen".parse::<DomainType>().expect_err("unknown");
        assert_eq!(err.to_string(), "expected one of: kvm, qemu, test");
    }
}
