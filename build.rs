//! The build script: tables generated from upstream's facts
//! (`build/patch_facts.rs`) and the release binary's code layout
//! (`build/link_order.rs`).

#[path = "build/link_order.rs"]
mod link_order;
#[path = "build/patch_facts.rs"]
mod patch_facts;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build");
    patch_facts::run();
    link_order::run();
}
