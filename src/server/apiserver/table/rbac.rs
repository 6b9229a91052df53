//! Tables of the RBAC bindings as kubectl shows them (upstream's printers):
//! the role they grant, and with `-o wide` whom they grant it to. Roles and
//! ClusterRoles have the default table (name, creation time), as upstream.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age, col, name, wide, Column, Printer, AGE, NAME};

pub const BINDINGS: Printer = Printer {
    columns: bindings_columns,
    cells: bindings_cells,
};

fn bindings_columns() -> Vec<Column> {
    vec![
        NAME,
        col("Role", "string", "Role of the rolebinding."),
        AGE,
        wide("Users", "string", "Users in the rolebinding."),
        wide("Groups", "string", "Groups in the rolebinding."),
        wide(
            "ServiceAccounts",
            "string",
            "ServiceAccounts in the rolebinding.",
        ),
    ]
}

fn bindings_cells(obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let role_ref = obj.get("roleRef").cloned().unwrap_or(Value::Null);
    let role = format!("{}/{}", field(&role_ref, "kind"), field(&role_ref, "name"));
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for s in obj
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match field(s, "kind").as_str() {
            "User" => users.push(field(s, "name")),
            "Group" => groups.push(field(s, "name")),
            "ServiceAccount" => sas.push(format!("{}/{}", field(s, "namespace"), field(s, "name"))),
            _ => {}
        }
    }
    vec![
        name(obj),
        json!(role),
        age(obj, now),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(sas.join(", ")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_shows_its_role_and_subjects() {
        let b = json!({
            "metadata": {"name": "read", "creationTimestamp": "2026-12-01T00:00:00Z"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [
                {"kind": "User", "name": "jane"}, {"kind": "User", "name": "joe"},
                {"kind": "Group", "name": "devs"},
                {"kind": "ServiceAccount", "name": "app", "namespace": "demo"},
            ]
        });
        let now = "2026-12-01T00:05:00Z".parse().unwrap();
        let cells = bindings_cells(&b, now);
        assert_eq!(cells[1], "ClusterRole/view");
        assert_eq!(cells[2], "5m");
        assert_eq!(cells[3], "jane, joe");
        assert_eq!(cells[4], "devs");
        assert_eq!(cells[5], "demo/app");
        assert_eq!(
            bindings_columns()
                .iter()
                .filter(|c| c.priority == 1)
                .count(),
            3
        );
    }
}
