//! Decoding arbitrary bytes never panics, and anything accepted is
//! canonical: it re-encodes to exactly the bytes it came from.

use migrated_proto::{Call, Procedure, ProcedureVisitor, RemoteProcedure};
use proptest::prelude::*;

/// Decodes `bytes` as `P::Ret`; if accepted, checks the re-encoding.
struct RetCanonical<'a>(&'a [u8]);

impl ProcedureVisitor for RetCanonical<'_> {
    type Output = Result<(), String>;
    fn visit<P: RemoteProcedure>(self) -> Self::Output {
        let Ok(value) = migrated_xdr::from_bytes::<P::Ret>(self.0) else {
            return Ok(());
        };
        match migrated_xdr::to_bytes(&value) {
            Ok(b) if b == self.0 => Ok(()),
            Ok(b) => Err(format!("{value:?} re-encodes as {b:?}")),
            Err(e) => Err(format!("{value:?} does not re-encode: {e}")),
        }
    }
}

fn any_procedure() -> impl Strategy<Value = Procedure> {
    (0..Procedure::ALL.len()).prop_map(|i| Procedure::ALL[i])
}

/// Byte strings made of XDR-ish words (small counts and flags are likely).
fn words() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            (0u32..4).prop_map(u32::to_be_bytes),
            any::<u32>().prop_map(u32::to_be_bytes),
            any::<[u8; 4]>(),
        ],
        0..24,
    )
    .prop_map(|w| w.concat())
}

proptest! {
    #[test]
    fn accepted_calls_are_canonical(p in any_procedure(), bytes in words()) {
        if let Ok(call) = Call::decode(p, &bytes) {
            prop_assert_eq!(call.procedure(), p);
            prop_assert_eq!(call.encode().ok(), Some(bytes));
        }
    }

    #[test]
    fn accepted_replies_are_canonical(p in any_procedure(), bytes in words()) {
        let checked = p.visit(RetCanonical(&bytes));
        prop_assert!(checked.is_ok(), "{}: {:?}", p.name(), checked);
    }
}
