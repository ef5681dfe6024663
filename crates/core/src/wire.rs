//! Conversions between the calls layer's values and the generated wire types.
//!
//! Kept apart so the rest of core reads as plain Rust; only this module knows
//! how `remote_typed_param` and `remote_nonnull_domain` are spelled by the
//! generator.

use migrated_proto as proto;
use uuid::Uuid;

use crate::domain::DomainRef;
use crate::error::{Error, Result};
use crate::typed_params::{TypedParam, TypedParams, TypedValue};

impl From<TypedValue> for proto::TypedParamValue {
    fn from(value: TypedValue) -> Self {
        match value {
            TypedValue::Int(v) => proto::TypedParamValue::Int(v),
            TypedValue::UInt(v) => proto::TypedParamValue::Uint(v),
            TypedValue::LLong(v) => proto::TypedParamValue::Llong(v),
            TypedValue::ULLong(v) => proto::TypedParamValue::Ullong(v),
            TypedValue::Double(v) => proto::TypedParamValue::Double(v),
            TypedValue::Boolean(v) => proto::TypedParamValue::Boolean(i32::from(v)),
            TypedValue::String(v) => proto::TypedParamValue::String(v),
        }
    }
}

impl TryFrom<proto::TypedParamValue> for TypedValue {
    type Error = Error;

    /// # Errors
    /// [`Error::InvalidArg`] for a boolean other than 0 or 1.
    fn try_from(value: proto::TypedParamValue) -> Result<Self> {
        Ok(match value {
            proto::TypedParamValue::Int(v) => TypedValue::Int(v),
            proto::TypedParamValue::Uint(v) => TypedValue::UInt(v),
            proto::TypedParamValue::Llong(v) => TypedValue::LLong(v),
            proto::TypedParamValue::Ullong(v) => TypedValue::ULLong(v),
            proto::TypedParamValue::Double(v) => TypedValue::Double(v),
            proto::TypedParamValue::Boolean(0) => TypedValue::Boolean(false),
            proto::TypedParamValue::Boolean(1) => TypedValue::Boolean(true),
            proto::TypedParamValue::Boolean(other) => {
                return Err(Error::InvalidArg {
                    operation: "decode typed parameter",
                    reason: format!("boolean value {other} is neither 0 nor 1"),
                })
            }
            proto::TypedParamValue::String(v) => TypedValue::String(v),
        })
    }
}

impl From<TypedParam> for proto::TypedParam {
    fn from(param: TypedParam) -> Self {
        proto::TypedParam {
            field: param.field,
            value: param.value.into(),
        }
    }
}

impl TypedParams {
    /// Converts a received wire list, checking count and names (see
    /// [`TypedParams::from_received`]) and boolean values.
    ///
    /// # Errors
    /// [`Error::TooManyParams`], [`Error::ParamNameTooLong`], [`Error::InvalidArg`].
    pub fn from_wire(params: Vec<proto::TypedParam>, max: usize) -> Result<Self> {
        if params.len() > max {
            return Err(Error::TooManyParams {
                count: params.len(),
                max,
            });
        }
        let params = params
            .into_iter()
            .map(|p| {
                Ok(TypedParam {
                    field: p.field,
                    value: p.value.try_into()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::from_received(params, max)
    }

    /// The list in wire form.
    pub fn into_wire(self) -> Vec<proto::TypedParam> {
        self.into_vec().into_iter().map(Into::into).collect()
    }
}

impl From<DomainRef> for proto::NonnullDomain {
    fn from(dom: DomainRef) -> Self {
        proto::NonnullDomain {
            name: dom.name,
            uuid: *dom.uuid.as_bytes(),
            id: dom.id,
        }
    }
}

impl From<proto::NonnullDomain> for DomainRef {
    fn from(dom: proto::NonnullDomain) -> Self {
        DomainRef {
            name: dom.name,
            uuid: Uuid::from_bytes(dom.uuid),
            id: dom.id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use crate::typed_params::MAX_PARAMS;

    #[test]
    fn typed_params_round_trip_through_the_wire_type() {
        let params = TypedParams::new()
            .with("a", TypedValue::Int(-1))
            .with("b", TypedValue::UInt(2))
            .with("c", TypedValue::LLong(-3))
            .with("d", TypedValue::ULLong(4))
            .with("e", TypedValue::Double(0.5))
            .with("f", TypedValue::Boolean(true))
            .with("g", TypedValue::String("x".into()));
        let wire = params.clone().into_wire();
        assert_eq!(wire[5].value, proto::TypedParamValue::Boolean(1));
        let back = TypedParams::from_wire(wire, MAX_PARAMS).expect("valid");
        assert_eq!(back, params);
    }

    #[test]
    fn wire_boolean_other_than_zero_or_one_is_refused() {
        let wire = vec![proto::TypedParam {
            field: "success".into(),
            value: proto::TypedParamValue::Boolean(2),
        }];
        let err = TypedParams::from_wire(wire, MAX_PARAMS).expect_err("2 is not a boolean");
        assert_eq!(err.code(), ErrorCode::InvalidArg);
    }

    #[test]
    fn wire_list_over_the_limit_is_refused_before_conversion() {
        let wire = (0..65)
            .map(|i| proto::TypedParam {
                field: format!("k{i}"),
                value: proto::TypedParamValue::Int(i),
            })
            .collect();
        let err = TypedParams::from_wire(wire, MAX_PARAMS).expect_err("65 > 64");
        assert_eq!(err.code(), ErrorCode::Rpc);
    }

    #[test]
    fn domain_ref_round_trips_through_nonnull_domain() {
        let dom = DomainRef {
            name: "web".into(),
            uuid: Uuid::new_v4(),
            id: 7,
        };
        let wire: proto::NonnullDomain = dom.clone().into();
        assert_eq!(wire.uuid, *dom.uuid.as_bytes());
        assert_eq!(DomainRef::from(wire), dom);
    }
}
