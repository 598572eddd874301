//! JSON as Docker's Go code reads it.

use serde_json::Value;

/// Drops every object member whose value is null, at any depth. Go's encoding/json
/// leaves a field at its zero value for `null`, so clients (docker-py among them) send
/// `"Options": null` for "not set"; with the members gone, serde's defaults apply
/// whatever the field's Rust type.
pub fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nulls_go_at_every_depth_and_arrays_keep_their_length() {
        let mut v = json!({"Name": "n", "Options": null, "IPAM": {"Config": [{"Subnet": null, "Gateway": "10.0.0.1"}, null]}});
        strip_nulls(&mut v);
        assert_eq!(v, json!({"Name": "n", "IPAM": {"Config": [{"Gateway": "10.0.0.1"}, null]}}));
    }
}
