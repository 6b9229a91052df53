//! Review kinds (`authentication.k8s.io/v1` TokenReview and
//! SelfSubjectReview): created only, answered from the request and the
//! caller, never stored (`serviceaccount::review`).

use super::{Review, Strategy};

pub struct TokenReview;

impl Strategy for TokenReview {
    fn review(&self) -> Option<Review> {
        Some(Review::Token)
    }
}

pub static TOKEN_REVIEW: TokenReview = TokenReview;

pub struct SelfSubjectReview;

impl Strategy for SelfSubjectReview {
    fn review(&self) -> Option<Review> {
        Some(Review::SelfSubject)
    }
}

pub static SELF_SUBJECT_REVIEW: SelfSubjectReview = SelfSubjectReview;
