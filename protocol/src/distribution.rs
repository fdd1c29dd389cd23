use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

/// A mergeable distribution of durations (seconds): an exact count plus a DDSketch
/// (1 % relative accuracy on every quantile, merges exactly).
///
/// The sketch is absent when the distribution is empty, and when it was redacted for
/// k-anonymity ([`Distribution::redacted`]): then only the count is known.
///
/// Decoding checks the sketch's internals (see [`SketchError`]): the sketch library trusts
/// them and indexes its bins with them, so one crafted sketch would otherwise panic a merge.
/// A `Distribution` therefore only ever holds a sketch built by [`Distribution::add`], a merge,
/// or a decode that passed those checks.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(try_from = "DistributionWire")]
pub struct Distribution {
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sketch: Option<DDSketch>,
}

/// Largest key magnitude a sketch with the default configuration can produce (values from
/// 1e-9 to f64::MAX map to keys within about ±36 000); well inside `i32`, so no bin arithmetic
/// of the sketch library can overflow on a checked sketch.
const MAX_SKETCH_KEY: i64 = 1 << 20;

/// Why a serialised sketch was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SketchError {
    #[error("the sketch's configuration is not the default one every storefront sketch uses")]
    Config,
    #[error("the sketch's {store} bins are inconsistent: {reason}")]
    Bins {
        store: &'static str,
        reason: &'static str,
    },
    #[error("the sketch is empty but a distribution only carries a sketch with values")]
    Empty,
    #[error("the sketch's min, max or sum is not a finite number")]
    NotFinite,
    #[error("the sketch's counts overflow")]
    Overflow,
}

/// The serialised form of a [`DDSketch`] (its serde layout, field for field), read before the
/// sketch itself so its internals can be checked.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SketchWire {
    config: serde_json::Value,
    store: StoreWire,
    negative_store: StoreWire,
    min: Option<f64>,
    max: Option<f64>,
    sum: Option<f64>,
    zero_count: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoreWire {
    bins: Vec<u64>,
    count: u64,
    min_key: i32,
    max_key: i32,
    offset: i32,
    bin_limit: usize,
    is_collapsed: bool,
}

impl StoreWire {
    /// The invariants the sketch library keeps for its collapsing dense store.
    fn check(&self, name: &'static str, max_bins: usize) -> Result<(), SketchError> {
        let bad = |reason| {
            Err(SketchError::Bins {
                store: name,
                reason,
            })
        };
        if self.bin_limit != max_bins {
            return bad("the bin limit is not the configured one");
        }
        if self.bins.len() > max_bins {
            return bad("more bins than the limit");
        }
        let total = self
            .bins
            .iter()
            .try_fold(0u64, |sum, &bin| sum.checked_add(bin))
            .ok_or(SketchError::Overflow)?;
        if total != self.count {
            return bad("the bins do not add up to the count");
        }
        if self.count == 0 {
            // Exactly a new, untouched store.
            if !self.bins.is_empty()
                || self.min_key != i32::MAX
                || self.max_key != i32::MIN
                || self.offset != 0
                || self.is_collapsed
            {
                return bad("an empty store with bins or keys");
            }
            return Ok(());
        }
        let (min_key, max_key, offset) = (
            i64::from(self.min_key),
            i64::from(self.max_key),
            i64::from(self.offset),
        );
        let end = offset + self.bins.len() as i64; // exclusive
        if min_key > max_key || min_key < offset || max_key >= end {
            return bad("the key range lies outside the bins");
        }
        if min_key < -MAX_SKETCH_KEY || max_key > MAX_SKETCH_KEY {
            return bad("keys beyond any value the sketch can hold");
        }
        let (lo, hi) = ((min_key - offset) as usize, (max_key - offset) as usize);
        let outside = self.bins[..lo].iter().chain(&self.bins[hi + 1..]);
        if outside.copied().any(|bin| bin != 0) {
            return bad("counts outside the key range");
        }
        Ok(())
    }

    /// `(key, count)` of every non-empty bin.
    fn bins(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        (self.offset..)
            .zip(self.bins.iter().copied())
            .filter(|&(_, count)| count > 0)
    }
}

impl SketchWire {
    fn of(sketch: &DDSketch) -> SketchWire {
        serde_json::to_value(sketch)
            .and_then(serde_json::from_value)
            .expect("SketchWire mirrors DDSketch's serde layout")
    }

    fn check(&self) -> Result<(), SketchError> {
        let defaults = Config::defaults();
        let expected = serde_json::to_value(defaults).expect("a sketch config always serialises");
        if self.config != expected {
            return Err(SketchError::Config);
        }
        let max_bins = defaults.max_num_bins as usize;
        self.store.check("positive", max_bins)?;
        self.negative_store.check("negative", max_bins)?;
        let total = self
            .store
            .count
            .checked_add(self.negative_store.count)
            .and_then(|n| n.checked_add(self.zero_count))
            .ok_or(SketchError::Overflow)?;
        if total == 0 {
            return Err(SketchError::Empty);
        }
        let finite = |v: Option<f64>| v.is_some_and(f64::is_finite);
        if !(finite(self.min) && finite(self.max) && finite(self.sum)) {
            return Err(SketchError::NotFinite);
        }
        Ok(())
    }

    fn total_count(&self) -> u64 {
        self.store.count + self.negative_store.count + self.zero_count
    }
}

/// What a [`Distribution`] is decoded from: its sketch is checked before it is built.
#[derive(Deserialize)]
struct DistributionWire {
    count: u64,
    #[serde(default)]
    sketch: Option<SketchWire>,
}

impl TryFrom<DistributionWire> for Distribution {
    type Error = SketchError;

    fn try_from(wire: DistributionWire) -> Result<Self, SketchError> {
        let sketch = match wire.sketch {
            None => None,
            Some(sketch) => {
                sketch.check()?;
                let sketch = serde_json::to_value(&sketch)
                    .and_then(serde_json::from_value::<DDSketch>)
                    .map_err(|_| SketchError::Config)?;
                Some(sketch)
            }
        };
        Ok(Distribution {
            count: wire.count,
            sketch,
        })
    }
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
        // Saturates rather than wrapping in release builds; a saturated count no longer matches
        // its sketch, so the values are dropped below and only the (capped) count remains.
        let Some(count) = self.count.checked_add(other.count) else {
            self.count = u64::MAX;
            self.sketch = None;
            return;
        };
        self.count = count;
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

    /// The copy that may leave the store (k-anonymity): below `min_count` values only the
    /// count is kept. From `min_count` values on, the sketch is rebuilt from its bins, each
    /// value replaced by its bin's representative: quantiles are unchanged, but the exact
    /// minimum and maximum (one person's visit) become bin values within the sketch's 1 %, and
    /// the sum becomes the sum of those bin values (the mean stays within 1 %), so no exact
    /// figure of one person can be read or differenced out of what leaves the store.
    pub fn redacted(&self, min_count: u64) -> Distribution {
        let sketch = match &self.sketch {
            Some(sketch) if self.count >= min_count => Some(binned(sketch)),
            _ => None,
        };
        Distribution {
            count: self.count,
            sketch,
        }
    }

    /// Checks the sketch against the values it describes: the count it holds equals this
    /// distribution's count, and every value lies in `0..=max_value` (durations). Decoding has
    /// already checked the sketch's internals.
    pub fn check_values(&self, max_value: f64) -> Result<(), DistributionError> {
        let Some(sketch) = &self.sketch else {
            return Ok(());
        };
        if sketch.count() as u64 != self.count {
            return Err(DistributionError::CountMismatch {
                count: self.count,
                sketch: sketch.count() as u64,
            });
        }
        let (min, max) = (sketch.min(), sketch.max());
        if min.is_some_and(|v| v < 0.0) || max.is_some_and(|v| v > max_value) {
            return Err(DistributionError::OutOfRange { max_value });
        }
        Ok(())
    }
}

/// Why a distribution does not describe what it claims to.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DistributionError {
    #[error("the sketch holds {sketch} values but the distribution counts {count}")]
    CountMismatch { count: u64, sketch: u64 },
    #[error("values outside 0..={max_value} s")]
    OutOfRange { max_value: f64 },
}

/// The same bins with every value replaced by its bin's representative value.
fn binned(sketch: &DDSketch) -> DDSketch {
    let wire = SketchWire::of(sketch);
    let config = Config::defaults();
    let mut out = DDSketch::new(config);
    for (key, count) in wire.negative_store.bins() {
        out.add_with_count(-config.value(key), count);
    }
    out.add_with_count(0.0, wire.zero_count);
    for (key, count) in wire.store.bins() {
        out.add_with_count(config.value(key), count);
    }
    debug_assert_eq!(out.count() as u64, wire.total_count());
    out
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

    fn sketch_json(values: &[f64]) -> serde_json::Value {
        let mut d = Distribution::new();
        for &v in values {
            d.add(v);
        }
        serde_json::to_value(&d).unwrap()
    }

    #[test]
    fn crafted_sketch_internals_are_refused_at_decode() {
        let good = sketch_json(&[30.0, 60.0, 600.0]);
        assert!(serde_json::from_value::<Distribution>(good.clone()).is_ok());
        type Craft = fn(&mut serde_json::Value);
        let crafted: [(&str, Craft); 7] = [
            ("bins emptied", |v| {
                v["sketch"]["store"]["bins"] = serde_json::json!([])
            }),
            ("offset moved", |v| {
                v["sketch"]["store"]["offset"] = 1_000_000.into()
            }),
            ("key range past the bins", |v| {
                v["sketch"]["store"]["max_key"] = i32::MAX.into()
            }),
            ("count not the bins' sum", |v| {
                v["sketch"]["store"]["count"] = 99.into()
            }),
            ("other gamma", |v| {
                v["sketch"]["config"]["gamma"] = 1.5.into()
            }),
            ("huge bin vector", |v| {
                v["sketch"]["store"]["bins"] = serde_json::json!(vec![0u64; 100_000])
            }),
            ("no maximum", |v| {
                v["sketch"]["max"] = serde_json::Value::Null
            }),
        ];
        for (what, craft) in crafted {
            let mut v = good.clone();
            craft(&mut v);
            assert!(
                serde_json::from_value::<Distribution>(v).is_err(),
                "{what} was accepted"
            );
        }
    }

    #[test]
    fn a_redacted_distribution_carries_no_exact_extremes() {
        let values = [61.3, 75.0, 128.9, 400.25, 3605.7];
        let mut d = Distribution::new();
        for v in values {
            d.add(v);
        }
        let json = serde_json::to_value(d.redacted(5)).unwrap();
        let (min, max, sum) = (
            json["sketch"]["min"].as_f64().unwrap(),
            json["sketch"]["max"].as_f64().unwrap(),
            json["sketch"]["sum"].as_f64().unwrap(),
        );
        let exact_sum: f64 = values.iter().sum();
        assert_ne!(min, 61.3, "exact minimum left the store");
        assert_ne!(max, 3605.7, "exact maximum left the store");
        assert_ne!(sum, exact_sum, "exact sum left the store");
        assert!((min - 61.3).abs() / 61.3 < 0.01 && (max - 3605.7).abs() / 3605.7 < 0.01);
        assert!((sum - exact_sum).abs() / exact_sum < 0.01);
        let redacted = d.redacted(5);
        for q in [0.1, 0.25, 0.5, 0.75, 0.9] {
            assert_eq!(redacted.quantile(q), d.quantile(q), "quantile {q} changed");
        }
        let back: Distribution = serde_json::from_value(json).unwrap();
        assert_eq!(
            back, redacted,
            "the redacted copy decodes and passes the checks"
        );
    }

    #[test]
    fn merged_counts_saturate_instead_of_wrapping() {
        let mut big = Distribution {
            count: u64::MAX - 1,
            sketch: None,
        };
        big.merge(&Distribution {
            count: 5,
            sketch: None,
        });
        assert_eq!(big.count, u64::MAX);
    }
}
