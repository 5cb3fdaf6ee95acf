//! The zone of a called number (rating.md §2): the zone of its **longest**
//! matching prefix in `destinations.csv`, as the SQL function
//! `longest_prefix_zone(called_number)`.
//!
//! This rule lives in Rust, not in `sql/`, for speed and memory: a month of
//! CDRs holds millions of distinct called numbers, and the SQL form (cut
//! each distinct number at every prefix length, equi-join with the prefixes,
//! keep the longest) needed a table of all of them and a join that cannot
//! spill. Here each number is looked up in a hash map of the prefixes, from
//! the longest prefix length in use down to the shortest: a few look-ups a
//! number, nothing held per number. The tests below and the rule cases
//! `10_longest_prefix`, `11_short_number` and `12_no_destination` pin it.
//! Numbers of 6 digits or fewer (`FR_SHORT`) are decided in the SQL.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

/// The prefixes of `destinations.csv` and their zones.
#[derive(Debug, Clone)]
pub struct PrefixZones {
    /// Sorted (prefix, zone) pairs: the identity of the table.
    entries: Vec<(String, String)>,
    lookup: HashMap<String, usize>,
    /// Distinct prefix lengths, longest first.
    lengths: Vec<usize>,
    signature: Signature,
}

impl PrefixZones {
    pub fn new(mut entries: Vec<(String, String)>) -> Self {
        entries.sort();
        entries.dedup_by(|a, b| a.0 == b.0);
        let lookup = entries
            .iter()
            .enumerate()
            .map(|(i, (p, _))| (p.clone(), i))
            .collect();
        let mut lengths: Vec<usize> = entries.iter().map(|(p, _)| p.len()).collect();
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        lengths.dedup();
        PrefixZones {
            entries,
            lookup,
            lengths,
            signature: Signature::new(
                TypeSignature::Uniform(
                    1,
                    vec![DataType::Utf8, DataType::Utf8View, DataType::LargeUtf8],
                ),
                Volatility::Immutable,
            ),
        }
    }

    /// The zone of the longest prefix of `number`, if any prefix matches.
    pub fn zone(&self, number: &str) -> Option<&str> {
        self.lengths
            .iter()
            .filter(|len| **len <= number.len())
            .find_map(|len| self.lookup.get(&number[..*len]))
            .map(|i| self.entries[*i].1.as_str())
    }

    /// The SQL function `longest_prefix_zone`.
    pub fn udf(self) -> ScalarUDF {
        ScalarUDF::new_from_impl(self)
    }
}

impl PartialEq for PrefixZones {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for PrefixZones {}

impl Hash for PrefixZones {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.entries.hash(state);
    }
}

impl ScalarUDFImpl for PrefixZones {
    fn name(&self) -> &str {
        "longest_prefix_zone"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [argument] = args.args.as_slice() else {
            return exec_err!("longest_prefix_zone takes one argument");
        };
        let numbers = argument.to_array(args.number_rows)?;
        let numbers = cast(&numbers, &DataType::Utf8View)?;
        let numbers = numbers.as_string_view();
        let mut zones = StringBuilder::with_capacity(numbers.len(), numbers.len() * 8);
        for number in numbers.iter() {
            zones.append_option(number.and_then(|n| self.zone(n)));
        }
        Ok(ColumnarValue::Array(Arc::new(zones.finish()) as ArrayRef))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PrefixZones {
        PrefixZones::new(
            [
                ("33", "FR_FIXED"),
                ("336", "FR_MOBILE"),
                ("3361", "FR_SPECIAL"),
                ("1", "NORTH_AMERICA"),
            ]
            .iter()
            .map(|(p, z)| (p.to_string(), z.to_string()))
            .collect(),
        )
    }

    #[test]
    fn the_longest_prefix_wins() {
        let zones = table();
        assert_eq!(zones.zone("33612345678"), Some("FR_SPECIAL"));
        assert_eq!(zones.zone("33650000001"), Some("FR_MOBILE"));
        assert_eq!(zones.zone("33140000001"), Some("FR_FIXED"));
        assert_eq!(zones.zone("12125550100"), Some("NORTH_AMERICA"));
        assert_eq!(zones.zone("99912345678"), None);
        assert_eq!(zones.zone("3"), None);
    }

    #[tokio::test]
    async fn as_a_sql_function() {
        let ctx = crate::engine::session();
        ctx.register_udf(table().udf());
        let rows = crate::engine::rows_strings(
            &ctx,
            "SELECT longest_prefix_zone(n) FROM (VALUES ('33612345678'), ('99912345678'), (NULL)) AS t(n)",
        )
        .await
        .unwrap();
        assert_eq!(
            rows,
            vec![
                vec!["FR_SPECIAL".to_string()],
                vec![String::new()],
                vec![String::new()]
            ]
        );
    }
}
