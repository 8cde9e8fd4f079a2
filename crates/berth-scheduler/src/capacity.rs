//! How a capacity provider strategy splits the tasks of one request between its providers,
//! as ECS documents it: the provider with a `base` takes that many tasks first (at most the
//! request's count; only one provider may have a base), then the rest are split in
//! proportion to the `weight`s (a provider with weight 0 takes none of the rest). A strategy
//! whose weights are all 0 places nothing, even with one provider (ECS refuses it: "There are
//! no capacity providers with a weight value greater than zero …").
//!
//! The proportional part uses the largest-remainder method: a provider's share of the rest
//! `r` is `r * weight / total` rounded down, and the tasks left over go one each to the
//! largest fractional parts, ties to the provider listed first. Every share is therefore its
//! exact quota rounded down or up (with weights 1 and 4, five tasks are 1 and 4).

/// One item of a strategy, as the split sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Share {
    pub base: u32,
    pub weight: u32,
}

/// Why a strategy cannot split a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("the capacity provider strategy is empty")]
    Empty,
    #[error("more than one capacity provider of the strategy has a base")]
    SeveralBases,
    #[error("no capacity provider of the strategy has a weight above 0")]
    NoWeight,
}

/// How many of `count` tasks each item of `strategy` takes, in the strategy's order.
pub fn split(strategy: &[Share], count: usize) -> Result<Vec<usize>, SplitError> {
    if strategy.is_empty() {
        return Err(SplitError::Empty);
    }
    if strategy.iter().filter(|s| s.base > 0).count() > 1 {
        return Err(SplitError::SeveralBases);
    }
    let total: u64 = strategy.iter().map(|s| u64::from(s.weight)).sum();
    if total == 0 {
        return Err(SplitError::NoWeight);
    }
    let mut out = vec![0usize; strategy.len()];
    let mut rest = count;
    if let Some(k) = strategy.iter().position(|s| s.base > 0) {
        let base = usize::try_from(strategy[k].base)
            .unwrap_or(usize::MAX)
            .min(count);
        out[k] = base;
        rest -= base;
    }
    let rest64 = rest as u64;
    // (remainder numerator, index) for the leftover tasks.
    let mut remainders: Vec<(u64, usize)> = Vec::with_capacity(strategy.len());
    let mut given = 0usize;
    for (k, s) in strategy.iter().enumerate() {
        let exact = rest64 * u64::from(s.weight);
        let floor = usize::try_from(exact / total).unwrap_or(rest);
        out[k] += floor;
        given += floor;
        if s.weight > 0 {
            remainders.push((exact % total, k));
        }
    }
    // Largest remainder first; ties keep the strategy's order (the sort is stable).
    remainders.sort_by_key(|r| std::cmp::Reverse(r.0));
    for (_, k) in remainders.into_iter().take(rest - given) {
        out[k] += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(base: u32, weight: u32) -> Share {
        Share { base, weight }
    }

    #[test]
    fn base_first_then_weights() {
        // ECS's example: weight 1 and weight 4 run one task on the first for every four on
        // the second.
        assert_eq!(split(&[s(0, 1), s(0, 4)], 5), Ok(vec![1, 4]));
        assert_eq!(split(&[s(0, 1), s(0, 4)], 10), Ok(vec![2, 8]));
        // Base 2 on the first, then 1:1.
        assert_eq!(split(&[s(2, 1), s(0, 1)], 6), Ok(vec![4, 2]));
        // The base caps at the count.
        assert_eq!(split(&[s(0, 1), s(5, 1)], 3), Ok(vec![0, 3]));
        // A base provider with weight 0 takes its base only.
        assert_eq!(split(&[s(1, 0), s(0, 1)], 4), Ok(vec![1, 3]));
        // Equal weights, odd count: the leftover goes to the first listed.
        assert_eq!(split(&[s(0, 1), s(0, 1)], 3), Ok(vec![2, 1]));
        assert_eq!(split(&[s(0, 2), s(0, 1), s(0, 0)], 3), Ok(vec![2, 1, 0]));
        // One provider takes everything.
        assert_eq!(split(&[s(2, 3)], 4), Ok(vec![4]));
        assert_eq!(split(&[s(0, 1), s(0, 4)], 0), Ok(vec![0, 0]));
    }

    #[test]
    fn refusals() {
        assert_eq!(split(&[], 1), Err(SplitError::Empty));
        assert_eq!(split(&[s(1, 1), s(1, 1)], 1), Err(SplitError::SeveralBases));
        assert_eq!(split(&[s(1, 0), s(0, 0)], 1), Err(SplitError::NoWeight));
        assert_eq!(split(&[s(0, 0)], 1), Err(SplitError::NoWeight));
    }
}
