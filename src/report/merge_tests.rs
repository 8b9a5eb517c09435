use super::*;

#[test]
fn counts_add_and_unmergeable_numbers_become_null() {
    let mut a =
        json!({"started": 3, "failures": {"no_reply": 1}, "ratio": 0.5, "same": 0.25, "name": "x", "list": [1]});
    let b = json!({"started": 4, "failures": {"no_reply": 2, "closed": 1}, "ratio": 0.1, "same": 0.25, "name": "y", "list": [2]});
    add_counts(&mut a, &b);
    assert_eq!(
        a,
        json!({"started": 7, "failures": {"no_reply": 3, "closed": 1}, "ratio": null, "same": 0.25, "name": "x", "list": [1, 2]})
    );
}

#[test]
fn capacity_reports_and_other_versions_are_refused_with_the_file_named() {
    let cap = json!({"schema_version": 1, "capacity": {}, "histograms": {"x": {}}});
    assert_eq!(
        Shard::new("c.json", cap).err().unwrap().to_string(),
        "c.json: a capacity search's report; merge takes run reports"
    );
    let v2 = json!({"schema_version": 2, "histograms": {"x": {}}});
    assert_eq!(
        Shard::new("v2.json", v2).err().unwrap().to_string(),
        "v2.json: not a schema_version 1 report"
    );
    assert!(matches!(merge(&[]), Err(MergeError::TooFew)));
}
