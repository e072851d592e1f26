//! Headers exchange matching (RabbitMQ's `x-match` = all | any | all-with-x | any-with-x).

use crate::codec::{FieldTable, FieldValue};

/// Whether a message with `headers` matches a binding with `args`.
///
/// Binding keys starting with `x-` are ignored unless `x-match` ends in `-with-x`. A binding
/// value of type void matches on the key's presence alone. With no header table a message
/// matches only bindings with nothing to check under `all`.
pub fn headers_match(args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let mode = match args.get("x-match") {
        Some(FieldValue::LongStr(s)) => s.as_bytes(),
        _ => b"all".as_slice(),
    };
    let (any, with_x) = match mode {
        b"any" => (true, false),
        b"any-with-x" => (true, true),
        b"all-with-x" => (false, true),
        _ => (false, false),
    };
    let mut checked = 0usize;
    let mut matched = 0usize;
    for (key, want) in args.iter() {
        if key.as_str() == "x-match" || (!with_x && key.as_str().starts_with("x-")) {
            continue;
        }
        checked += 1;
        let have = headers.and_then(|h| h.get(key.as_str()));
        let ok = match (want, have) {
            (_, None) => false,
            (FieldValue::Void, Some(_)) => true,
            (w, Some(h)) => values_equal(w, h),
        };
        if ok {
            matched += 1;
            if any {
                return true;
            }
        } else if !any {
            return false;
        }
    }
    if any {
        matched > 0
    } else {
        matched == checked
    }
}

/// Header values compare by value across integer widths, as RabbitMQ's term comparison does.
fn values_equal(a: &FieldValue, b: &FieldValue) -> bool {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::LongStr;

    fn table(pairs: &[(&str, FieldValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert(*k, v.clone());
        }
        t
    }

    fn s(v: &str) -> FieldValue {
        FieldValue::LongStr(LongStr::from(v))
    }

    #[test]
    fn all_needs_every_key_and_ignores_x_keys() {
        let args = table(&[("x-match", s("all")), ("a", s("1")), ("b", s("2"))]);
        let full = table(&[("a", s("1")), ("b", s("2")), ("c", s("3"))]);
        let partial = table(&[("a", s("1"))]);
        assert!(headers_match(&args, Some(&full)));
        assert!(!headers_match(&args, Some(&partial)));
        assert!(!headers_match(&args, None));
    }

    #[test]
    fn any_needs_one_key() {
        let args = table(&[("x-match", s("any")), ("a", s("1")), ("b", s("2"))]);
        assert!(headers_match(&args, Some(&table(&[("b", s("2"))]))));
        assert!(!headers_match(&args, Some(&table(&[("b", s("3"))]))));
        assert!(!headers_match(&args, None));
    }

    #[test]
    fn empty_all_binding_matches_everything() {
        let args = table(&[("x-match", s("all"))]);
        assert!(headers_match(&args, None));
        assert!(headers_match(&args, Some(&table(&[("a", s("1"))]))));
    }

    #[test]
    fn integers_of_different_widths_compare_equal() {
        let args = table(&[("n", FieldValue::I32(5))]);
        assert!(headers_match(
            &args,
            Some(&table(&[("n", FieldValue::I64(5))]))
        ));
    }

    #[test]
    fn void_matches_on_presence() {
        let args = table(&[("k", FieldValue::Void)]);
        assert!(headers_match(&args, Some(&table(&[("k", s("anything"))]))));
        assert!(!headers_match(&args, Some(&table(&[("j", s("x"))]))));
    }
}
