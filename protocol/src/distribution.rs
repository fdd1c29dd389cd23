use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

/// A mergeable distribution of durations (seconds): an exact count plus a DDSketch
/// (1 % relative accuracy on every quantile, merges exactly).
///
/// The sketch is absent when the distribution is empty, and when it was redacted for
/// k-anonymity ([`Distribution::redacted`]): then only the count is known.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Distribution {
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sketch: Option<DDSketch>,
}

impl Distribution {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, value_seconds: f64) {
        self.count += 1;
        self.sketch
            .get_or_insert_with(|| DDSketch::new(Config::defaults()))
            .add(value_seconds);
    }

    /// Merges `other` into `self`. If either side had its values redacted, the merged
    /// distribution keeps only the count: a sketch over part of the values would mislead.
    pub fn merge(&mut self, other: &Distribution) {
        let complete = self.has_values() && other.has_values();
        self.count += other.count;
        if !complete {
            self.sketch = None;
            return;
        }
        match (&mut self.sketch, &other.sketch) {
            // Every sketch here uses `Config::defaults()`, so a merge cannot meet mismatched
            // parameters; should it fail anyway, dropping the values beats a wrong sketch.
            (Some(mine), Some(theirs)) => {
                if mine.merge(theirs).is_err() {
                    self.sketch = None;
                }
            }
            (None, Some(theirs)) => self.sketch = Some(theirs.clone()),
            (_, None) => {}
        }
    }

    /// True when every counted value is in the sketch (nothing was redacted).
    pub fn has_values(&self) -> bool {
        match &self.sketch {
            Some(sketch) => sketch.count() as u64 == self.count,
            None => self.count == 0,
        }
    }

    /// The `q` quantile (0..=1), when values are known.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.sketch.as_ref()?.quantile(q).ok().flatten()
    }

    pub fn median(&self) -> Option<f64> {
        self.quantile(0.5)
    }

    pub fn mean(&self) -> Option<f64> {
        let sketch = self.sketch.as_ref()?;
        Some(sketch.sum()? / sketch.count() as f64)
    }

    /// The copy that may leave the store: below `min_count` values only the count is kept.
    pub fn redacted(&self, min_count: u64) -> Distribution {
        if self.count < min_count {
            Distribution {
                count: self.count,
                sketch: None,
            }
        } else {
            self.clone()
        }
    }
}

impl std::fmt::Debug for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Distribution")
            .field("count", &self.count)
            .field("p50", &self.median())
            .field("p90", &self.quantile(0.9))
            .finish()
    }
}

impl PartialEq for Distribution {
    /// Equal when the counts and the encoded sketches are equal (DDSketch has no `PartialEq`).
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count
            && serde_json::to_value(&self.sketch).ok() == serde_json::to_value(&other.sketch).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_within_one_percent() {
        let mut d = Distribution::new();
        for v in 1..=1001 {
            d.add(v as f64);
        }
        let median = d.median().unwrap();
        assert!((median - 501.0).abs() / 501.0 < 0.01, "{median}");
        assert_eq!(d.mean().unwrap(), 501.0);
    }

    #[test]
    fn merge_of_halves_equals_whole() {
        let (mut a, mut b, mut whole) = (
            Distribution::new(),
            Distribution::new(),
            Distribution::new(),
        );
        for v in 1..100 {
            let v = v as f64 * 3.7;
            if v < 150.0 {
                a.add(v)
            } else {
                b.add(v)
            }
            whole.add(v);
        }
        a.merge(&b);
        assert_eq!(a.count, whole.count);
        assert_eq!(a.median(), whole.median());
        assert_eq!(a.quantile(0.9), whole.quantile(0.9));
    }

    #[test]
    fn redacted_distribution_keeps_only_the_count_and_poisons_merges() {
        let mut small = Distribution::new();
        small.add(10.0);
        small.add(20.0);
        let redacted = small.redacted(5);
        assert_eq!(redacted.count, 2);
        assert_eq!(redacted.median(), None);

        let mut big = Distribution::new();
        for v in 0..10 {
            big.add(v as f64 + 1.0);
        }
        big.merge(&redacted);
        assert_eq!(big.count, 12);
        assert_eq!(
            big.median(),
            None,
            "a partial sketch must not pass for the whole"
        );
    }

    #[test]
    fn empty_merge_is_identity_and_round_trips() {
        let mut d = Distribution::new();
        d.add(42.0);
        let mut e = Distribution::new();
        e.merge(&d);
        assert_eq!(e, d);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Distribution>(&json).unwrap(), e);
        let empty = serde_json::to_string(&Distribution::new()).unwrap();
        assert_eq!(
            serde_json::from_str::<Distribution>(&empty).unwrap(),
            Distribution::new()
        );
    }
}
