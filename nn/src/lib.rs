//! placeholder, filled below
mod error;
mod device;
pub use error::NnError;
pub use device::Device;
