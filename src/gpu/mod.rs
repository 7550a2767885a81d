//! Layer 1: the device, buffers, kernels and the recording of work.

mod device;
mod kernels;
mod pool;
mod recorder;
mod uniform;

pub use device::{list_adapters, AdapterSummary, Gpu, DEVICE_ENV};
pub use kernels::{Kernel, Shader, Storage};
pub use pool::GpuBuffer;
pub use recorder::{take_profile, Access, KernelTime, PROFILE_ENV, WG};
pub(crate) use uniform::uniform_struct;
pub use uniform::UniformLayout;
