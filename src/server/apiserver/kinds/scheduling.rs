//! PriorityClasses: the two system classes exist in every cluster and
//! cannot be deleted (upstream's priorityclass storage refuses it).

use super::Strategy;
use crate::api::status::ApiError;
use crate::api::validation::cluster_kinds::SYSTEM_PRIORITY_CLASSES;

pub struct PriorityClass;
pub static PRIORITY_CLASS: PriorityClass = PriorityClass;

impl Strategy for PriorityClass {
    fn check_delete(&self, name: &str) -> Result<(), ApiError> {
        if SYSTEM_PRIORITY_CLASSES.iter().any(|(n, _)| *n == name) {
            return Err(ApiError::forbidden(format!(
                "priorityclasses.scheduling.k8s.io \"{name}\" is forbidden: this is a system priority class and cannot be deleted"
            )));
        }
        Ok(())
    }
}
