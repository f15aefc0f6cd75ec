//! The formats that berkutd and its clients share, and nothing else: the wire
//! protocol (message types, framing and an async client) and the `.bscc`
//! archive format with its manifest. Daemon logic lives in `berkut-daemon`;
//! this crate is what a second implementation of either side would need.

pub mod archive;
pub mod ids;
pub mod manifest;
pub mod properties;
pub mod wire;
