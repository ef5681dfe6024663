//! Every procedure of libvirt's remote program, served or not, by number
//! (`proto/libvirt-procedures.txt`).
//!
//! [`Procedure`](crate::Procedure) holds only what `migrated` serves. A
//! stock client may call any other procedure libvirt defines; libvirtd
//! answers one its driver lacks with `VIR_ERR_NO_SUPPORT` naming the API,
//! so the daemon needs the names of all of them to do the same.

/// The list: `NUMBER NAME` per line, `#` comments.
const LIST: &str = include_str!("../../../proto/libvirt-procedures.txt");

/// The wire name (`REMOTE_PROC_DOMAIN_RESET`) of libvirt's remote procedure
/// `number`, or `None` for a number libvirt does not define.
pub fn libvirt_procedure_name(number: i32) -> Option<&'static str> {
    LIST.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (n, name) = line.split_once(' ')?;
            (n.parse::<i32>().ok()? == number).then_some(name.trim())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Procedure;

    #[test]
    fn the_list_agrees_with_every_served_procedure() {
        for &proc_ in Procedure::ALL {
            assert_eq!(
                libvirt_procedure_name(i32::from(proc_)),
                Some(proc_.name()),
                "{proc_:?}"
            );
        }
    }

    #[test]
    fn numbers_run_from_one_without_gaps() {
        let numbers: Vec<i32> = LIST
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                l.split_once(' ')
                    .expect("NUMBER NAME")
                    .0
                    .parse()
                    .expect("number")
            })
            .collect();
        assert_eq!(numbers, (1..=numbers.len() as i32).collect::<Vec<_>>());
        assert_eq!(
            libvirt_procedure_name(245),
            Some("REMOTE_PROC_DOMAIN_RESET")
        );
        assert_eq!(libvirt_procedure_name(0), None);
        assert_eq!(libvirt_procedure_name(100_000), None);
    }
}
