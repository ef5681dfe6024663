//! Keyboard codesets of `virDomainSendKey` and the translation between them.
//!
//! libvirt keeps one table per codeset, all indexed alike (one entry per
//! Linux keycode, in keycode order), and translates a code by finding the
//! first entry whose value in the source codeset matches and taking that
//! entry's value in the target codeset (`virKeycodeValueTranslate` in
//! `src/util/virkeycode.c`). A key the target codeset lacks translates to 0,
//! a code the source codeset lacks does not translate at all. The values are
//! those of keycodemapdb's `data/keymaps.csv` (commit 22b8996), the database
//! libvirt generates its tables from: the last row of a keycode wins per
//! column, a missing OS X code is 0xff (the value of `KEY_RESERVED`), any
//! other missing code 0. `xt_kbd` and `qnum` are derived from AT set 1 as
//! keycodemapdb's `keymap-gen` derives them; `xt` is AT set 1 (libvirt:
//! "included by mistake").

/// `VIR_DOMAIN_SEND_KEY_MAX_KEYS`: most keys one call may press.
pub const SEND_KEY_MAX_KEYS: usize = 16;

/// `virKeycodeSet`: the codeset a `send-key` call's keycodes belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codeset {
    /// Linux input layer keycodes (`KEY_*`), virsh's default.
    Linux,
    /// XT scancodes (the same values as AT set 1).
    Xt,
    /// AT set 1 scancodes, `0xe0XX` for extended keys.
    Atset1,
    /// AT set 2 scancodes.
    Atset2,
    /// AT set 3 scancodes.
    Atset3,
    /// macOS virtual keycodes.
    Osx,
    /// XT scancodes as the Linux `xtkbd` driver numbers them.
    XtKbd,
    /// USB HID usage codes.
    Usb,
    /// Windows virtual-key codes.
    Win32,
    /// QEMU's key numbers (`rfb` before libvirt 4.2).
    Qnum,
}

impl Codeset {
    /// Every codeset, in wire order.
    pub const ALL: [Codeset; 10] = [
        Codeset::Linux,
        Codeset::Xt,
        Codeset::Atset1,
        Codeset::Atset2,
        Codeset::Atset3,
        Codeset::Osx,
        Codeset::XtKbd,
        Codeset::Usb,
        Codeset::Win32,
        Codeset::Qnum,
    ];

    /// The codeset with wire value `value`, `None` past `VIR_KEYCODE_SET_LAST`.
    pub fn from_wire(value: u32) -> Option<Self> {
        usize::try_from(value)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// libvirt's name of the codeset (`virKeycodeSetTypeToString`).
    pub const fn name(self) -> &'static str {
        match self {
            Codeset::Linux => "linux",
            Codeset::Xt => "xt",
            Codeset::Atset1 => "atset1",
            Codeset::Atset2 => "atset2",
            Codeset::Atset3 => "atset3",
            Codeset::Osx => "os_x",
            Codeset::XtKbd => "xt_kbd",
            Codeset::Usb => "usb",
            Codeset::Win32 => "win32",
            Codeset::Qnum => "qnum",
        }
    }
}

impl std::fmt::Display for Codeset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The code of `code` (in codeset `from`) in codeset `to`, as libvirt's
/// `virKeycodeValueTranslate`: `None` when `from` has no key with that code,
/// 0 when the key has no code in `to`.
pub fn translate(from: Codeset, to: Codeset, code: u32) -> Option<u32> {
    keys()
        .find(|key| key.code(from) == code)
        .map(|key| key.code(to))
}

/// One key: its codes in the codesets keymaps.csv has columns for.
#[derive(Debug, Clone, Copy)]
struct Key {
    linux: u16,
    osx: u16,
    atset1: u16,
    atset2: u16,
    atset3: u16,
    usb: u16,
    win32: u16,
}

/// keymap-gen's `HANJA_HANGEUL_KEYS`: AT set 1 codes above 0x7f that are no
/// `0xe0` extension.
const HANJA_HANGEUL: [u16; 2] = [0xf1, 0xf2];

impl Key {
    fn code(self, codeset: Codeset) -> u32 {
        let at1 = self.atset1;
        let extended = at1 > 0x7f && !HANJA_HANGEUL.contains(&at1);
        u32::from(match codeset {
            Codeset::Linux => self.linux,
            Codeset::Xt | Codeset::Atset1 => at1,
            Codeset::Atset2 => self.atset2,
            Codeset::Atset3 => self.atset3,
            Codeset::Osx => self.osx,
            Codeset::XtKbd if extended => 0x100 | (at1 & 0x7f),
            Codeset::XtKbd => at1,
            Codeset::Usb => self.usb,
            Codeset::Win32 => self.win32,
            Codeset::Qnum if extended => 0x80 | (at1 & 0x7f),
            Codeset::Qnum if HANJA_HANGEUL.contains(&at1) => at1 & 0x7f,
            Codeset::Qnum => at1,
        })
    }
}

/// Every key, in Linux keycode order.
fn keys() -> impl Iterator<Item = Key> {
    let low = (0u16..).zip(LOW.iter()).map(|(linux, row)| Key {
        linux,
        osx: row[0],
        atset1: row[1],
        atset2: row[2],
        atset3: row[3],
        usb: row[4],
        win32: row[5],
    });
    let high = HIGH
        .iter()
        .flat_map(|&(first, last)| first..=last)
        .map(|linux| {
            let (osx, win32) = HIGH_CODES
                .iter()
                .find(|(code, _, _)| *code == linux)
                .map_or((NO, 0), |&(_, osx, win32)| (osx, win32));
            Key {
                linux,
                osx,
                atset1: 0,
                atset2: 0,
                atset3: 0,
                usb: 0,
                win32,
            }
        });
    low.chain(high)
}

/// A missing OS X code.
const NO: u16 = 0xff;

/// Linux keycodes 0..=255: OS X, AT set 1, AT set 2, AT set 3, USB, Win32.
#[rustfmt::skip]
const LOW: [[u16; 6]; 256] = [
    [NO, 0, 0, 0, 0, 0], // RESERVED
    [0x35, 0x01, 0x76, 0x08, 41, 0x1b], // ESC
    [0x12, 0x02, 0x16, 0x16, 30, 0x31], // 1
    [0x13, 0x03, 0x1e, 0x1e, 31, 0x32], // 2
    [0x14, 0x04, 0x26, 0x26, 32, 0x33], // 3
    [0x15, 0x05, 0x25, 0x25, 33, 0x34], // 4
    [0x17, 0x06, 0x2e, 0x2e, 34, 0x35], // 5
    [0x16, 0x07, 0x36, 0x36, 35, 0x36], // 6
    [0x1a, 0x08, 0x3d, 0x3d, 36, 0x37], // 7
    [0x1c, 0x09, 0x3e, 0x3e, 37, 0x38], // 8
    [0x19, 0x0a, 0x46, 0x46, 38, 0x39], // 9
    [0x1d, 0x0b, 0x45, 0x45, 39, 0x30], // 0
    [0x1b, 0x0c, 0x4e, 0x4e, 45, 0xbd], // MINUS
    [0x18, 0x0d, 0x55, 0x55, 46, 0xbb], // EQUAL
    [0x33, 0x0e, 0x66, 0x66, 42, 0x08], // BACKSPACE
    [0x30, 0x0f, 0x0d, 0x0d, 43, 0x09], // TAB
    [0x0c, 0x10, 0x15, 0x15, 20, 0x51], // Q
    [0x0d, 0x11, 0x1d, 0x1d, 26, 0x57], // W
    [0x0e, 0x12, 0x24, 0x24, 8, 0x45], // E
    [0x0f, 0x13, 0x2d, 0x2d, 21, 0x52], // R
    [0x11, 0x14, 0x2c, 0x2c, 23, 0x54], // T
    [0x10, 0x15, 0x35, 0x35, 28, 0x59], // Y
    [0x20, 0x16, 0x3c, 0x3c, 24, 0x55], // U
    [0x22, 0x17, 0x43, 0x43, 12, 0x49], // I
    [0x1f, 0x18, 0x44, 0x44, 18, 0x4f], // O
    [0x23, 0x19, 0x4d, 0x4d, 19, 0x50], // P
    [0x21, 0x1a, 0x54, 0x54, 47, 0xdb], // LEFTBRACE
    [0x1e, 0x1b, 0x5b, 0x5b, 48, 0xdd], // RIGHTBRACE
    [0x24, 0x1c, 0x5a, 0x5a, 40, 0x0d], // ENTER
    [0x3b, 0x1d, 0x14, 0x11, 224, 0x11], // LEFTCTRL
    [0x00, 0x1e, 0x1c, 0x1c, 4, 0x41], // A
    [0x01, 0x1f, 0x1b, 0x1b, 22, 0x53], // S
    [0x02, 0x20, 0x23, 0x23, 7, 0x44], // D
    [0x03, 0x21, 0x2b, 0x2b, 9, 0x46], // F
    [0x05, 0x22, 0x34, 0x34, 10, 0x47], // G
    [0x04, 0x23, 0x33, 0x33, 11, 0x48], // H
    [0x26, 0x24, 0x3b, 0x3b, 13, 0x4a], // J
    [0x28, 0x25, 0x42, 0x42, 14, 0x4b], // K
    [0x25, 0x26, 0x4b, 0x4b, 15, 0x4c], // L
    [0x29, 0x27, 0x4c, 0x4c, 51, 0xba], // SEMICOLON
    [0x27, 0x28, 0x52, 0x52, 52, 0xde], // APOSTROPHE
    [0x32, 0x29, 0x0e, 0x0e, 53, 0xc0], // GRAVE
    [0x38, 0x2a, 0x12, 0x12, 225, 0xa0], // LEFTSHIFT
    [0x2a, 0x2b, 0x5d, 0x5c, 50, 0xdc], // BACKSLASH
    [0x06, 0x2c, 0x1a, 0x1a, 29, 0x5a], // Z
    [0x07, 0x2d, 0x22, 0x22, 27, 0x58], // X
    [0x08, 0x2e, 0x21, 0x21, 6, 0x43], // C
    [0x09, 0x2f, 0x2a, 0x2a, 25, 0x56], // V
    [0x0b, 0x30, 0x32, 0x32, 5, 0x42], // B
    [0x2d, 0x31, 0x31, 0x31, 17, 0x4e], // N
    [0x2e, 0x32, 0x3a, 0x3a, 16, 0x4d], // M
    [0x2b, 0x33, 0x41, 0x41, 54, 0xbc], // COMMA
    [0x2f, 0x34, 0x49, 0x49, 55, 0xbe], // DOT
    [0x2c, 0x35, 0x4a, 0x4a, 56, 0xbf], // SLASH
    [0x3c, 0x36, 0x59, 0x59, 229, 0xa1], // RIGHTSHIFT
    [0x43, 0x37, 0x7c, 0x7e, 85, 0x6a], // KPASTERISK
    [0x3a, 0x38, 0x11, 0x19, 226, 0x12], // LEFTALT
    [0x31, 0x39, 0x29, 0x29, 44, 0x20], // SPACE
    [0x39, 0x3a, 0x58, 0x14, 57, 0x14], // CAPSLOCK
    [0x7a, 0x3b, 0x05, 0x07, 58, 0x70], // F1
    [0x78, 0x3c, 0x06, 0x0f, 59, 0x71], // F2
    [0x63, 0x3d, 0x04, 0x17, 60, 0x72], // F3
    [0x76, 0x3e, 0x0c, 0x1f, 61, 0x73], // F4
    [0x60, 0x3f, 0x03, 0x27, 62, 0x74], // F5
    [0x61, 0x40, 0x0b, 0x2f, 63, 0x75], // F6
    [0x62, 0x41, 0x83, 0x37, 64, 0x76], // F7
    [0x64, 0x42, 0x0a, 0x3f, 65, 0x77], // F8
    [0x65, 0x43, 0x01, 0x47, 66, 0x78], // F9
    [0x6d, 0x44, 0x09, 0x4f, 67, 0x79], // F10
    [0x47, 0x45, 0x77, 0x76, 83, 0x90], // NUMLOCK
    [NO, 0x46, 0x7e, 0x5f, 71, 0x91], // SCROLLLOCK
    [0x59, 0x47, 0x6c, 0x6c, 95, 0x67], // KP7
    [0x5b, 0x48, 0x75, 0x75, 96, 0x68], // KP8
    [0x5c, 0x49, 0x7d, 0x7d, 97, 0x69], // KP9
    [0x4e, 0x4a, 0x7b, 0x4e, 86, 0x6d], // KPMINUS
    [0x56, 0x4b, 0x6b, 0x6b, 92, 0x64], // KP4
    [0x57, 0x4c, 0x73, 0x73, 93, 0x65], // KP5
    [0x58, 0x4d, 0x74, 0x74, 94, 0x66], // KP6
    [0x45, 0x4e, 0x79, 0x7c, 87, 0x6b], // KPPLUS
    [0x53, 0x4f, 0x69, 0x69, 89, 0x61], // KP1
    [0x54, 0x50, 0x72, 0x72, 90, 0x62], // KP2
    [0x55, 0x51, 0x7a, 0x7a, 91, 0x63], // KP3
    [0x52, 0x52, 0x70, 0x70, 98, 0x60], // KP0
    [0x41, 0x53, 0x71, 0x71, 99, 0x6e], // KPDOT
    [NO, 0x54, 0, 0, 0, 0], // 84
    [NO, 0x76, 0x5f, 0, 148, 0], // ZENKAKUHANKAKU
    [0x0a, 0x56, 0x61, 0x13, 100, 0xe2], // 102ND
    [0x67, 0x57, 0x78, 0x56, 68, 0x7a], // F11
    [0x6f, 0x58, 0x07, 0x5e, 69, 0x7b], // F12
    [0x5e, 0x73, 0x51, 0, 135, 0xe2], // RO
    [NO, 0x78, 0x63, 0, 146, 0x15], // KATAKANA
    [NO, 0x77, 0x62, 0x87, 147, 0], // HIRAGANA
    [NO, 0x79, 0x64, 0x86, 138, 0x1c], // HENKAN
    [NO, 0x70, 0x13, 0x87, 136, 0xf2], // KATAKANAHIRAGANA
    [NO, 0x7b, 0x67, 0x85, 139, 0x1d], // MUHENKAN
    [0x5f, 0x5c, 0x27, 0, 140, 0], // KPJPCOMMA
    [0x4c, 0xe01c, 0xe05a, 0x79, 88, 0], // KPENTER
    [0x3e, 0xe01d, 0xe014, 0x58, 228, 0xa3], // RIGHTCTRL
    [0x4b, 0xe035, 0xe04a, 0x4a, 84, 0x6f], // KPSLASH
    [NO, 0x54, 0x7f, 0x57, 70, 0x2c], // SYSRQ
    [0x3d, 0xe038, 0xe011, 0x39, 230, 0xa5], // RIGHTALT
    [NO, 0x5b, 0, 0, 0, 0], // LINEFEED
    [0x73, 0xe047, 0xe06c, 0x6e, 74, 0x24], // HOME
    [0x7e, 0xe048, 0xe075, 0x63, 82, 0x26], // UP
    [0x74, 0xe049, 0xe07d, 0x6f, 75, 0x21], // PAGEUP
    [0x7b, 0xe04b, 0xe06b, 0x61, 80, 0x25], // LEFT
    [0x7c, 0xe04d, 0xe074, 0x6a, 79, 0x27], // RIGHT
    [0x77, 0xe04f, 0xe069, 0x65, 77, 0x23], // END
    [0x7d, 0xe050, 0xe072, 0x60, 81, 0x28], // DOWN
    [0x79, 0xe051, 0xe07a, 0x6d, 78, 0x22], // PAGEDOWN
    [NO, 0xe052, 0xe070, 0x67, 73, 0x2d], // INSERT
    [0x75, 0xe053, 0xe071, 0x64, 76, 0x2e], // DELETE
    [NO, 0xe06f, 0xe06f, 0x8e, 0, 0], // MACRO
    [0x4a, 0xe020, 0xe023, 0x9c, 239, 0xad], // MUTE
    [0x49, 0xe02e, 0xe021, 0x9d, 238, 0xae], // VOLUMEDOWN
    [0x48, 0xe030, 0xe032, 0x95, 237, 0xaf], // VOLUMEUP
    [NO, 0xe05e, 0xe037, 0, 102, 0], // POWER
    [0x51, 0x59, 0x0f, 0, 103, 0], // KPEQUAL
    [NO, 0xe04e, 0xe079, 0, 0, 0], // KPPLUSMINUS
    [NO, 0xe046, 0xe077, 0x62, 72, 0x13], // PAUSE
    [NO, 0xe00b, 0, 0, 0, 0], // SCALE
    [NO, 0x7e, 0x6d, 0, 133, 0x6c], // KPCOMMA
    [0x68, 0xf2, 0xf2, 0, 144, 0x16], // HANGEUL
    [0x66, 0xf1, 0xf1, 0, 145, 0x1a], // HANJA
    [0x5d, 0x7d, 0x6a, 0x5d, 137, 0xdc], // YEN
    [0x37, 0xe05b, 0xe01f, 0x8b, 227, 0x5b], // LEFTMETA
    [0x36, 0xe05c, 0xe027, 0x8c, 231, 0x5c], // RIGHTMETA
    [0x6e, 0xe05d, 0xe02f, 0x8d, 101, 0x5d], // COMPOSE
    [NO, 0xe068, 0xe028, 0x0a, 243, 0xa9], // STOP
    [NO, 0xe005, 0, 0x0b, 121, 0], // AGAIN
    [NO, 0xe006, 0, 0x0c, 0, 0], // PROPS
    [NO, 0xe007, 0, 0x10, 122, 0], // UNDO
    [NO, 0xe00c, 0, 0, 119, 0], // FRONT
    [NO, 0xe078, 0, 0x18, 124, 0], // COPY
    [NO, 0x64, 0, 0x20, 116, 0], // OPEN
    [NO, 0x65, 0, 0x28, 125, 0], // PASTE
    [NO, 0xe041, 0, 0x30, 244, 0], // FIND
    [NO, 0xe03c, 0, 0x38, 123, 0], // CUT
    [0x72, 0xe075, 0, 0x09, 117, 0x2f], // HELP
    [NO, 0xe01e, 0, 0x91, 118, 0], // MENU
    [NO, 0xe021, 0xe02b, 0xa3, 251, 0], // CALC
    [NO, 0x66, 0, 0, 0, 0], // SETUP
    [NO, 0xe05f, 0xe03f, 0, 248, 0x5f], // SLEEP
    [NO, 0xe063, 0xe05e, 0, 0, 0], // WAKEUP
    [NO, 0x67, 0, 0, 0, 0], // FILE
    [NO, 0x68, 0, 0, 0, 0], // SENDFILE
    [NO, 0x69, 0, 0, 0, 0], // DELETEFILE
    [NO, 0xe013, 0, 0xa2, 0, 0], // XFER
    [NO, 0xe01f, 0, 0xa0, 0, 0], // PROG1
    [NO, 0xe017, 0, 0xa1, 0, 0], // PROG2
    [NO, 0xe002, 0, 0, 240, 0], // WWW
    [NO, 0x6a, 0, 0, 0, 0], // MSDOS
    [NO, 0xe012, 0, 0x96, 249, 0], // SCREENLOCK
    [NO, 0x6b, 0, 0, 0, 0], // DIRECTION
    [NO, 0xe026, 0, 0x9b, 0, 0], // CYCLEWINDOWS
    [NO, 0xe06c, 0xe048, 0, 0, 0], // MAIL
    [NO, 0xe066, 0xe018, 0, 0, 0], // BOOKMARKS
    [NO, 0xe06b, 0xe040, 0, 0, 0], // COMPUTER
    [NO, 0xe06a, 0xe038, 0, 241, 0xa6], // BACK
    [NO, 0xe069, 0xe030, 0, 242, 0xa7], // FORWARD
    [NO, 0xe023, 0, 0x9a, 0, 0], // CLOSECD
    [NO, 0x6c, 0, 0, 236, 0], // EJECTCD
    [NO, 0xe07d, 0, 0, 0, 0], // EJECTCLOSECD
    [NO, 0xe019, 0xe04d, 0x93, 235, 0xb0], // NEXTSONG
    [NO, 0xe022, 0xe034, 0, 232, 0xb3], // PLAYPAUSE
    [NO, 0xe010, 0xe015, 0x94, 234, 0xb1], // PREVIOUSSONG
    [NO, 0xe024, 0xe03b, 0x98, 233, 0xb2], // STOPCD
    [NO, 0xe031, 0, 0x9e, 0, 0], // RECORD
    [NO, 0xe018, 0, 0x9f, 0, 0], // REWIND
    [NO, 0x63, 0, 0, 0, 0], // PHONE
    [NO, 0, 0, 0, 0, 0], // ISO
    [NO, 0xe001, 0, 0, 0, 0], // CONFIG
    [NO, 0xe032, 0xe03a, 0x97, 0, 0xac], // HOMEPAGE
    [NO, 0xe067, 0xe020, 0, 250, 0xa8], // REFRESH
    [NO, 0, 0, 0, 0, 0], // EXIT
    [NO, 0, 0, 0, 0, 0], // MOVE
    [NO, 0xe008, 0, 0, 247, 0], // EDIT
    [NO, 0x75, 0, 0, 245, 0], // SCROLLUP
    [NO, 0xe00f, 0, 0, 246, 0], // SCROLLDOWN
    [NO, 0xe076, 0, 0, 182, 0], // KPLEFTPAREN
    [NO, 0xe07b, 0, 0, 183, 0], // KPRIGHTPAREN
    [NO, 0xe009, 0, 0, 0, 0], // NEW
    [NO, 0xe00a, 0, 0, 0, 0], // REDO
    [0x69, 0x5d, 0x2f, 0x7f, 104, 0x7c], // F13
    [0x6b, 0x5e, 0x37, 0x80, 105, 0x7d], // F14
    [0x71, 0x5f, 0x3f, 0x81, 106, 0x7e], // F15
    [0x6a, 0x55, 0, 0x82, 107, 0x7f], // F16
    [0x40, 0xe003, 0, 0x83, 108, 0x80], // F17
    [0x4f, 0xe077, 0, 0, 109, 0x81], // F18
    [0x50, 0xe004, 0, 0, 110, 0x82], // F19
    [0x5a, 0x5a, 0, 0, 111, 0x83], // F20
    [NO, 0x74, 0, 0, 112, 0x84], // F21
    [NO, 0xe079, 0, 0, 113, 0x85], // F22
    [NO, 0x6d, 0, 0, 114, 0x86], // F23
    [NO, 0x6f, 0, 0, 115, 0x87], // F24
    [NO, 0xe015, 0, 0, 0, 0], // 195
    [NO, 0xe016, 0, 0, 0, 0], // 196
    [NO, 0xe01a, 0, 0, 0, 0], // 197
    [NO, 0xe01b, 0, 0, 0, 0], // 198
    [NO, 0xe027, 0, 0, 0, 0], // 199
    [NO, 0xe028, 0, 0, 0, 0], // PLAYCD
    [NO, 0xe029, 0, 0, 0, 0], // PAUSECD
    [NO, 0xe02b, 0, 0, 0, 0], // PROG3
    [NO, 0xe02c, 0, 0, 0, 0], // PROG4
    [NO, 0xe02d, 0, 0, 0, 0], // DASHBOARD
    [NO, 0xe025, 0, 0, 0, 0], // SUSPEND
    [NO, 0xe02f, 0, 0, 0, 0], // CLOSE
    [NO, 0xe033, 0, 0, 0, 0xfa], // PLAY
    [NO, 0xe034, 0, 0, 0, 0], // FASTFORWARD
    [NO, 0xe036, 0, 0, 0, 0], // BASSBOOST
    [NO, 0xe039, 0, 0, 0, 0x2a], // PRINT
    [NO, 0xe03a, 0, 0, 0, 0], // HP
    [NO, 0xe03b, 0, 0, 0, 0], // CAMERA
    [NO, 0xe03d, 0, 0, 0, 0], // SOUND
    [NO, 0xe03e, 0, 0, 0, 0], // QUESTION
    [NO, 0xe03f, 0, 0, 0, 0xb4], // EMAIL
    [NO, 0xe040, 0, 0, 0, 0], // CHAT
    [NO, 0xe065, 0xe010, 0, 0, 0xaa], // SEARCH
    [NO, 0xe042, 0, 0, 0, 0], // CONNECT
    [NO, 0xe043, 0, 0, 0, 0], // FINANCE
    [NO, 0xe044, 0, 0, 0, 0], // SPORT
    [NO, 0xe045, 0, 0, 0, 0], // SHOP
    [NO, 0xe014, 0, 0, 0, 0], // ALTERASE
    [NO, 0xe04a, 0, 0, 0, 0], // CANCEL
    [NO, 0xe04c, 0, 0, 0, 0], // BRIGHTNESSDOWN
    [NO, 0xe054, 0, 0, 0, 0], // BRIGHTNESSUP
    [NO, 0xe06d, 0xe050, 0, 0, 0], // MEDIA
    [NO, 0xe056, 0, 0, 0, 0], // SWITCHVIDEOMODE
    [NO, 0xe057, 0, 0, 0, 0], // KBDILLUMTOGGLE
    [NO, 0xe058, 0, 0, 0, 0], // KBDILLUMDOWN
    [NO, 0xe059, 0, 0, 0, 0], // KBDILLUMUP
    [NO, 0xe05a, 0, 0, 0, 0], // SEND
    [NO, 0xe064, 0, 0, 0, 0], // REPLY
    [NO, 0xe00e, 0, 0, 0, 0], // FORWARDMAIL
    [NO, 0xe055, 0, 0, 0, 0], // SAVE
    [NO, 0xe070, 0, 0, 0, 0], // DOCUMENTS
    [NO, 0xe071, 0, 0, 0, 0], // BATTERY
    [NO, 0xe072, 0, 0, 0, 0], // BLUETOOTH
    [NO, 0xe073, 0, 0, 0, 0], // WLAN
    [NO, 0xe074, 0, 0, 0, 0], // UWB
    [NO, 0, 0, 0, 0, 0], // UNKNOWN
    [NO, 0, 0, 0, 0, 0], // VIDEO_NEXT
    [NO, 0, 0, 0, 0, 0], // VIDEO_PREV
    [NO, 0, 0, 0, 0, 0], // BRIGHTNESS_CYCLE
    [NO, 0, 0, 0, 0, 0], // BRIGHTNESS_ZERO
    [NO, 0, 0, 0, 0, 0], // DISPLAY_OFF
    [NO, 0, 0, 0, 0, 0], // WIMAX
    [NO, 0, 0, 0, 0, 0], // 247
    [NO, 0, 0, 0, 0, 0], // 248
    [NO, 0, 0, 0, 0, 0], // 249
    [NO, 0, 0, 0, 0, 0], // 250
    [NO, 0, 0, 0, 0, 0], // 251
    [NO, 0, 0, 0, 0, 0], // 252
    [NO, 0, 0, 0, 0, 0], // 253
    [NO, 0, 0, 0, 0, 0], // 254
    [NO, 0, 0xe012, 0, 0, 0], // 255
];

/// The Linux keycodes above 255 keymaps.csv lists (buttons and special
/// keys), as inclusive ranges: none has a scancode or a USB code.
const HIGH: &[(u16, u16)] = &[
    (0x100, 0x109),
    (0x110, 0x117),
    (0x120, 0x12b),
    (0x12f, 0x13e),
    (0x140, 0x147),
    (0x14a, 0x151),
    (0x160, 0x1b7),
    (0x1c0, 0x1c3),
    (0x1d0, 0x1e4),
    (0x1f1, 0x1fa),
    (0x200, 0x20c),
];

/// The few keys of [`HIGH`] with an OS X or Win32 code: (Linux, OS X, Win32).
const HIGH_CODES: &[(u16, u16, u16)] = &[
    (0x100, NO, 0x01), // BTN_0 (VK_LBUTTON)
    (0x101, NO, 0x02), // BTN_1
    (0x102, NO, 0x04), // BTN_2
    (0x103, NO, 0x05), // BTN_3
    (0x104, NO, 0x06), // BTN_4
    (0x161, NO, 0x29), // KEY_SELECT
    (0x16c, NO, 0xab), // KEY_FAVORITES
    (0x174, NO, 0xfb), // KEY_ZOOM
    (0x1d0, 0x3f, 0),  // KEY_FN
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_keys_become_qemu_numbers() {
        let qnum = |linux| translate(Codeset::Linux, Codeset::Qnum, linux);
        // KEY_A, KEY_LEFTCTRL, KEY_LEFTALT, KEY_DELETE (an 0xe0 key), KEY_F12.
        assert_eq!(qnum(30), Some(0x1e));
        assert_eq!(qnum(29), Some(0x1d));
        assert_eq!(qnum(56), Some(0x38));
        assert_eq!(qnum(111), Some(0xd3));
        assert_eq!(qnum(88), Some(0x58));
        // KEY_HANGEUL keeps its low bits; KEY_ISO has no scancode at all.
        assert_eq!(qnum(122), Some(0x72));
        assert_eq!(qnum(170), Some(0));
        // A button past 255 is a key libvirt knows, with no QEMU number.
        assert_eq!(qnum(0x110), Some(0));
        // Codes libvirt has no key for do not translate.
        assert_eq!(qnum(0x10a), None);
        assert_eq!(qnum(0x300), None);
    }

    #[test]
    fn the_other_codesets_translate_through_the_same_keys() {
        let to_qnum = |set, code| translate(set, Codeset::Qnum, code);
        assert_eq!(to_qnum(Codeset::Xt, 0xe053), Some(0xd3));
        assert_eq!(to_qnum(Codeset::Atset1, 0x1e), Some(0x1e));
        assert_eq!(to_qnum(Codeset::Atset2, 0x1c), Some(0x1e));
        assert_eq!(to_qnum(Codeset::Atset3, 0x1c), Some(0x1e));
        assert_eq!(to_qnum(Codeset::Osx, 0x00), Some(0x1e));
        assert_eq!(to_qnum(Codeset::XtKbd, 0x153), Some(0xd3));
        assert_eq!(to_qnum(Codeset::Usb, 4), Some(0x1e));
        assert_eq!(to_qnum(Codeset::Win32, 0x41), Some(0x1e));
        assert_eq!(to_qnum(Codeset::Qnum, 0xd3), Some(0xd3));
        assert_eq!(to_qnum(Codeset::Usb, 0x4000), None);
        // The first key with the code wins: OS X 0xff is KEY_RESERVED's.
        assert_eq!(to_qnum(Codeset::Osx, 0xff), Some(0));
        assert_eq!(
            translate(Codeset::Qnum, Codeset::Linux, 0x54),
            Some(84),
            "0x54 is keycode 84's before KEY_SYSRQ's"
        );
    }

    #[test]
    fn libvirts_own_keycode_test_cases_translate_alike() {
        // The cases of libvirt's tests/virkeycodetest.c.
        use Codeset::*;
        for (from, to, code, want) in [
            (Linux, Linux, 111, Some(111)),
            (Linux, Usb, 111, Some(76)),
            (Linux, Qnum, 88, Some(88)),
            (Linux, Qnum, 160, Some(163)),
            (Atset2, Atset3, 131, Some(55)),
            (Osx, Win32, 90, Some(131)),
            (Osx, Atset1, 90, Some(90)),
            (Osx, Atset1, 3200, None),
        ] {
            assert_eq!(translate(from, to, code), want, "{code} {from} -> {to}");
        }
    }

    #[test]
    fn wire_values_and_names_are_libvirts() {
        assert_eq!(Codeset::from_wire(0), Some(Codeset::Linux));
        assert_eq!(Codeset::from_wire(9), Some(Codeset::Qnum));
        assert_eq!(Codeset::from_wire(10), None);
        assert_eq!(Codeset::from_wire(u32::MAX), None);
        assert_eq!(Codeset::Osx.to_string(), "os_x");
        assert_eq!(Codeset::XtKbd.name(), "xt_kbd");
    }

    #[test]
    fn every_low_keycode_is_listed_once_in_order() {
        let linux: Vec<u32> = keys().map(|k| k.code(Codeset::Linux)).collect();
        assert!(linux.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(linux[255], 255);
    }
}
