//! The monthly cost allocation (割勘): the operator's platform cost split into a fixed share
//! (evenly), a share by population and a share by usage, with the operator's weights, in
//! integer yen that add up exactly to the total (largest-remainder rounding at every step).

use serde::{Deserialize, Serialize};

/// The operator's split policy for one month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// The month's platform cost in yen.
    pub total: i64,
    pub fixed_weight: u32,
    pub population_weight: u32,
    pub usage_weight: u32,
}

/// A municipality taking part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Party {
    pub lg_code: String,
    pub name: String,
    pub population: i64,
    /// Its usage in the month (requests or module milliseconds).
    pub usage: i64,
}

/// What one municipality pays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Share {
    pub lg_code: String,
    pub name: String,
    pub population: i64,
    pub usage: i64,
    pub fixed: i64,
    pub by_population: i64,
    pub by_usage: i64,
    pub amount: i64,
}

/// Splits `total` in proportion to `weights` (all zero: evenly) so the parts add up to
/// `total` exactly: floor each part, then give the remaining yen to the largest remainders
/// (ties to the earlier party).
pub fn largest_remainder(total: i64, weights: &[i64]) -> Vec<i64> {
    if weights.is_empty() {
        return Vec::new();
    }
    let weights: Vec<i128> = if weights.iter().all(|w| *w <= 0) { vec![1; weights.len()] } else { weights.iter().map(|w| i128::from((*w).max(0))).collect() };
    let sum: i128 = weights.iter().sum();
    let total = i128::from(total);
    let mut parts: Vec<i128> = weights.iter().map(|w| total * w / sum).collect();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(total * weights[i] % sum), i));
    let left = total - parts.iter().sum::<i128>();
    for &i in order.iter().take(left as usize) {
        parts[i] += 1;
    }
    parts.into_iter().map(|p| p as i64).collect()
}

/// The allocation for every party; amounts add up to `policy.total`.
pub fn allocate(policy: Policy, parties: &[Party]) -> Vec<Share> {
    let pools = largest_remainder(policy.total, &[i64::from(policy.fixed_weight), i64::from(policy.population_weight), i64::from(policy.usage_weight)]);
    let fixed = largest_remainder(pools[0], &vec![1; parties.len()]);
    let by_population = largest_remainder(pools[1], &parties.iter().map(|p| p.population).collect::<Vec<_>>());
    let by_usage = largest_remainder(pools[2], &parties.iter().map(|p| p.usage).collect::<Vec<_>>());
    parties
        .iter()
        .enumerate()
        .map(|(i, p)| Share {
            lg_code: p.lg_code.clone(),
            name: p.name.clone(),
            population: p.population,
            usage: p.usage,
            fixed: fixed[i],
            by_population: by_population[i],
            by_usage: by_usage[i],
            amount: fixed[i] + by_population[i] + by_usage[i],
        })
        .collect()
}

/// The allocation as CSV (UTF-8 with a header row).
pub fn to_csv(shares: &[Share]) -> String {
    let mut out = String::from("団体コード,団体名,人口,利用量,均等割,人口割,利用割,負担額\r\n");
    for s in shares {
        out.push_str(&format!("{},{},{},{},{},{},{},{}\r\n", s.lg_code, s.name, s.population, s.usage, s.fixed, s.by_population, s.by_usage, s.amount));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(code: &str, population: i64, usage: i64) -> Party {
        Party { lg_code: code.into(), name: code.into(), population, usage }
    }

    #[test]
    fn parts_add_up_exactly() {
        assert_eq!(largest_remainder(100, &[1, 1, 1]), vec![34, 33, 33]);
        assert_eq!(largest_remainder(10, &[0, 0]), vec![5, 5]);
        assert_eq!(largest_remainder(7, &[2, 1]), vec![5, 2]);
        for total in [0, 1, 999, 1_000_001, 987_654_321] {
            let parts = largest_remainder(total, &[3, 7, 11, 0, 13]);
            assert_eq!(parts.iter().sum::<i64>(), total);
            assert_eq!(parts[3], 0);
        }
    }

    #[test]
    fn weights_are_honoured_and_the_total_is_exact() {
        let parties = [party("131016", 68_000, 9_000), party("011002", 1_960_000, 1_000), party("472018", 310_000, 0)];
        let policy = Policy { total: 1_000_000, fixed_weight: 40, population_weight: 30, usage_weight: 30 };
        let shares = allocate(policy, &parties);
        assert_eq!(shares.iter().map(|s| s.amount).sum::<i64>(), 1_000_000);
        assert_eq!(shares.iter().map(|s| s.fixed).sum::<i64>(), 400_000);
        assert_eq!(shares.iter().map(|s| s.by_population).sum::<i64>(), 300_000);
        assert_eq!(shares.iter().map(|s| s.by_usage).sum::<i64>(), 300_000);
        // 9,000 of 10,000 requests: 90 % of the usage pool.
        assert_eq!(shares[0].by_usage, 270_000);
        // No usage: the fixed share and the population share only.
        assert_eq!(shares[2].by_usage, 0);
        assert_eq!(shares[2].fixed, 133_333);
        assert!(shares[2].amount > 133_333);
        // Population share follows population.
        assert!(shares[1].by_population > shares[2].by_population && shares[2].by_population > shares[0].by_population);
    }

    #[test]
    fn only_a_fixed_share() {
        let shares = allocate(Policy { total: 100, fixed_weight: 1, population_weight: 0, usage_weight: 0 }, &[party("a", 1, 1), party("b", 1000, 0), party("c", 0, 50)]);
        assert_eq!(shares.iter().map(|s| s.amount).collect::<Vec<_>>(), vec![34, 33, 33]);
    }
}
