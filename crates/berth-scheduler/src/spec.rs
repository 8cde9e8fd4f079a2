//! Placement constraints and strategies as an API gives them (type and field or expression as
//! strings), checked and turned into the engine's types. Every error is an
//! InvalidParameterException on ECS; its message is the error's text.

use crate::query::{QueryError, parse};
use crate::snapshot::{BinpackField, Constraint, SpreadField, Strategy};

/// At most this many constraints per task (the task definition's and the request's together).
pub const MAX_CONSTRAINTS: usize = 10;
/// At most this many strategies per request.
pub const MAX_STRATEGIES: usize = 5;
/// The longest memberOf expression.
pub const MAX_EXPRESSION: usize = 2000;

/// Why a constraint or strategy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPlacement {
    #[error(
        "Too many placement constraints: a task may have at most {MAX_CONSTRAINTS}, including the task definition's ({0} given)."
    )]
    TooManyConstraints(usize),
    #[error(
        "Too many placement strategies: a request may have at most {MAX_STRATEGIES} ({0} given)."
    )]
    TooManyStrategies(usize),
    #[error("A placement constraint must have a type.")]
    MissingConstraintType,
    #[error("Unknown placement constraint type '{0}': expected distinctInstance or memberOf.")]
    UnknownConstraintType(String),
    #[error("An expression cannot be specified for a distinctInstance placement constraint.")]
    ExpressionOnDistinct,
    #[error("A memberOf placement constraint requires an expression.")]
    MissingExpression,
    #[error(
        "The placement constraint expression may not be longer than {MAX_EXPRESSION} characters."
    )]
    ExpressionTooLong,
    #[error("Invalid placement constraint expression '{expression}': {error}.")]
    Expression {
        expression: String,
        error: QueryError,
    },
    #[error("A placement strategy must have a type.")]
    MissingStrategyType,
    #[error("Unknown placement strategy type '{0}': expected random, spread or binpack.")]
    UnknownStrategyType(String),
    #[error("The binpack placement strategy requires a field: cpu or memory.")]
    MissingBinpackField,
    #[error("Invalid field '{0}' for the binpack placement strategy: expected cpu or memory.")]
    BinpackField(String),
    #[error("The spread placement strategy requires a field: instanceId, host or attribute:NAME.")]
    MissingSpreadField,
    #[error(
        "Invalid field '{0}' for the spread placement strategy: expected instanceId, host or attribute:NAME."
    )]
    SpreadField(String),
}

/// A constraint from its `type` and `expression`.
pub fn constraint(
    kind: Option<&str>,
    expression: Option<&str>,
) -> Result<Constraint, InvalidPlacement> {
    let expression = expression.filter(|e| !e.trim().is_empty());
    match kind {
        None => Err(InvalidPlacement::MissingConstraintType),
        Some("distinctInstance") => match expression {
            Some(_) => Err(InvalidPlacement::ExpressionOnDistinct),
            None => Ok(Constraint::DistinctInstance),
        },
        Some("memberOf") => {
            let e = expression.ok_or(InvalidPlacement::MissingExpression)?;
            if e.chars().count() > MAX_EXPRESSION {
                return Err(InvalidPlacement::ExpressionTooLong);
            }
            parse(e)
                .map(Constraint::MemberOf)
                .map_err(|error| InvalidPlacement::Expression {
                    expression: e.to_string(),
                    error,
                })
        }
        Some(other) => Err(InvalidPlacement::UnknownConstraintType(other.into())),
    }
}

/// A strategy from its `type` and `field`.
pub fn strategy(kind: Option<&str>, field: Option<&str>) -> Result<Strategy, InvalidPlacement> {
    let field = field.filter(|f| !f.is_empty());
    match kind {
        None => Err(InvalidPlacement::MissingStrategyType),
        Some("random") => Ok(Strategy::Random),
        Some("binpack") => {
            let f = field.ok_or(InvalidPlacement::MissingBinpackField)?;
            match f.to_ascii_lowercase().as_str() {
                "cpu" => Ok(Strategy::Binpack(BinpackField::Cpu)),
                "memory" => Ok(Strategy::Binpack(BinpackField::Memory)),
                _ => Err(InvalidPlacement::BinpackField(f.into())),
            }
        }
        Some("spread") => {
            let f = field.ok_or(InvalidPlacement::MissingSpreadField)?;
            let lower = f.to_ascii_lowercase();
            if lower == "instanceid" || lower == "host" {
                return Ok(Strategy::Spread(SpreadField::Instance));
            }
            match lower
                .starts_with("attribute:")
                .then(|| &f["attribute:".len()..])
            {
                Some(name) if !name.is_empty() => {
                    Ok(Strategy::Spread(SpreadField::Attribute(name.into())))
                }
                _ => Err(InvalidPlacement::SpreadField(f.into())),
            }
        }
        Some(other) => Err(InvalidPlacement::UnknownStrategyType(other.into())),
    }
}

/// Checks the counts ECS limits.
pub fn check_counts(constraints: usize, strategies: usize) -> Result<(), InvalidPlacement> {
    if constraints > MAX_CONSTRAINTS {
        return Err(InvalidPlacement::TooManyConstraints(constraints));
    }
    if strategies > MAX_STRATEGIES {
        return Err(InvalidPlacement::TooManyStrategies(strategies));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraints() {
        assert_eq!(
            constraint(Some("distinctInstance"), None),
            Ok(Constraint::DistinctInstance)
        );
        assert_eq!(
            constraint(Some("distinctInstance"), Some("attribute:a exists")),
            Err(InvalidPlacement::ExpressionOnDistinct)
        );
        assert_eq!(
            constraint(Some("memberOf"), Some(" ")),
            Err(InvalidPlacement::MissingExpression)
        );
        assert!(matches!(
            constraint(Some("memberOf"), Some("attribute:a exists")),
            Ok(Constraint::MemberOf(_))
        ));
        let bad = constraint(Some("memberOf"), Some("attribute:a ==")).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "Invalid placement constraint expression 'attribute:a ==': expected a value for attribute:a, found end of expression at position 14."
        );
        assert_eq!(
            constraint(Some("memberOf"), Some(&"x".repeat(2001))),
            Err(InvalidPlacement::ExpressionTooLong)
        );
    }

    #[test]
    fn strategies() {
        assert_eq!(strategy(Some("random"), None), Ok(Strategy::Random));
        assert_eq!(
            strategy(Some("binpack"), Some("MEMORY")),
            Ok(Strategy::Binpack(BinpackField::Memory))
        );
        assert_eq!(
            strategy(Some("binpack"), Some("disk")),
            Err(InvalidPlacement::BinpackField("disk".into()))
        );
        assert_eq!(
            strategy(Some("binpack"), None),
            Err(InvalidPlacement::MissingBinpackField)
        );
        assert_eq!(
            strategy(Some("spread"), Some("host")),
            Ok(Strategy::Spread(SpreadField::Instance))
        );
        assert_eq!(
            strategy(Some("spread"), Some("attribute:ecs.availability-zone")),
            Ok(Strategy::Spread(SpreadField::Attribute(
                "ecs.availability-zone".into()
            )))
        );
        assert_eq!(
            strategy(Some("spread"), Some("cpu")),
            Err(InvalidPlacement::SpreadField("cpu".into()))
        );
        assert!(check_counts(10, 5).is_ok());
        assert_eq!(
            check_counts(11, 0),
            Err(InvalidPlacement::TooManyConstraints(11))
        );
        assert_eq!(
            check_counts(0, 6),
            Err(InvalidPlacement::TooManyStrategies(6))
        );
    }
}
