//! Integration tests of berkut-proto, one module per subject.

mod damage;
mod format;
mod fuzz;
mod support;
mod vectors;
mod wire;
