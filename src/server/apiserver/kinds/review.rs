//! Review kinds: created only, answered from the request and the caller,
//! never stored — `authentication.k8s.io/v1` TokenReview and
//! SelfSubjectReview (`serviceaccount::review`), `authorization.k8s.io/v1`
//! SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectAccessReview
//! and SelfSubjectRulesReview (`access_review`).

use super::{Review, Strategy};

pub struct ReviewKind(Review);

impl Strategy for ReviewKind {
    fn review(&self) -> Option<Review> {
        Some(self.0)
    }
}

pub static TOKEN_REVIEW: ReviewKind = ReviewKind(Review::Token);
pub static SELF_SUBJECT_REVIEW: ReviewKind = ReviewKind(Review::SelfSubject);
pub static SUBJECT_ACCESS_REVIEW: ReviewKind = ReviewKind(Review::SubjectAccess);
pub static LOCAL_SUBJECT_ACCESS_REVIEW: ReviewKind = ReviewKind(Review::LocalSubjectAccess);
pub static SELF_SUBJECT_ACCESS_REVIEW: ReviewKind = ReviewKind(Review::SelfSubjectAccess);
pub static SELF_SUBJECT_RULES_REVIEW: ReviewKind = ReviewKind(Review::SelfSubjectRules);
