//! Adapter choice and the device handle that every other layer works through.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::gpu::kernels::KernelCache;
use crate::gpu::pool::BufferPool;
use crate::gpu::recorder::Recorder;

/// Environment variable that picks an adapter by (part of) its name, like `--device`.
pub const DEVICE_ENV: &str = "TAMING_DEVICE";

/// What one adapter is, as `taming devices` prints it.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {}", self.name, self.backend, self.device_type)?;
        if !self.driver.is_empty() {
            write!(f, ", {}", self.driver)?;
        }
        write!(f, ")")
    }
}

fn summary(info: &wgpu::AdapterInfo) -> AdapterSummary {
    AdapterSummary {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: [info.driver.as_str(), info.driver_info.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Higher is preferred: a discrete GPU over an integrated one over a software device.
fn preference(info: &wgpu::AdapterInfo) -> u32 {
    use wgpu::DeviceType::*;
    let kind = match info.device_type {
        DiscreteGpu => 4,
        IntegratedGpu => 3,
        VirtualGpu => 2,
        Cpu => 1,
        Other => 0,
    };
    // Vulkan is the backend the kernels are tuned and tested on.
    let backend = u32::from(info.backend == wgpu::Backend::Vulkan);
    kind * 2 + backend
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    // The GL backend cannot run compute shaders with storage buffers reliably; leave it out.
    desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    wgpu::Instance::new(desc)
}

/// All adapters this machine offers, best first.
pub fn list_adapters() -> Vec<AdapterSummary> {
    let mut adapters = pollster::block_on(instance().enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| std::cmp::Reverse(preference(&a.get_info())));
    adapters.iter().map(|a| summary(&a.get_info())).collect()
}

/// Shared state of one open device. `Gpu` is a cheap handle to it.
pub(crate) struct GpuInner {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub is_cpu: bool,
    /// The device was opened with wgpu::Features::SUBGROUP.
    pub subgroups: bool,
    /// The device was opened with wgpu::Features::SHADER_F16 (f16 in storage buffers).
    pub f16: bool,
    /// The adapter's smallest subgroup size.
    pub subgroup_min_size: u32,
    pub limits: wgpu::Limits,
    pub pool: Rc<RefCell<BufferPool>>,
    pub kernels: RefCell<KernelCache>,
    pub recorder: RefCell<Recorder>,
    /// Test switch: fill every buffer an op allocates with NaN, so an unwritten element shows.
    pub poison: Cell<bool>,
    /// Flops of the convolutions and products recorded on a tape since the device was opened.
    pub flops: Cell<f64>,
}

/// A handle to the device. Clones share the device, the buffer pool and the pipeline cache.
#[derive(Clone)]
pub struct Gpu {
    pub(crate) inner: Rc<GpuInner>,
}

impl Gpu {
    /// Opens the best adapter, or the one whose name contains `name` (case-insensitive).
    /// Without `name`, the `TAMING_DEVICE` environment variable is consulted.
    pub fn new(name: Option<&str>) -> Result<Gpu> {
        let env_name = std::env::var(DEVICE_ENV).ok().filter(|s| !s.is_empty());
        let wanted = name.map(str::to_owned).or(env_name);
        let instance = instance();
        let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        if adapters.is_empty() {
            return Err(Error::NoAdapter);
        }
        adapters.sort_by_key(|a| std::cmp::Reverse(preference(&a.get_info())));
        let adapter = match &wanted {
            None => adapters.swap_remove(0),
            Some(w) => {
                let lower = w.to_lowercase();
                let pos = adapters
                    .iter()
                    .position(|a| a.get_info().name.to_lowercase().contains(&lower));
                match pos {
                    Some(p) => adapters.swap_remove(p),
                    None => {
                        let available = adapters
                            .iter()
                            .map(|a| summary(&a.get_info()).to_string())
                            .collect::<Vec<_>>()
                            .join("; ");
                        return Err(Error::AdapterNotFound {
                            requested: w.clone(),
                            available,
                        });
                    }
                }
            }
        };
        let info = adapter.get_info();
        // Ask for what the adapter has, not WebGPU's small defaults: ResNet activations at
        // batch 512 need storage bindings far above 128 MiB on a real GPU.
        let limits = adapter.limits();
        // Subgroup operations and f16 where the adapter has them (kernels that use them check
        // first).
        let wanted_features =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP | wgpu::Features::SHADER_F16;
        let desc = wgpu::DeviceDescriptor {
            label: Some("taming"),
            required_features: adapter.features() & wanted_features,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            Error::RequestDevice {
                adapter: info.name.clone(),
                reason: e.to_string(),
            }
        })?;
        let subgroups = device.features().contains(wgpu::Features::SUBGROUP);
        let f16 = device.features().contains(wgpu::Features::SHADER_F16);
        let pool = Rc::new(RefCell::new(BufferPool::default()));
        let recorder = Recorder::new(&device, limits.min_uniform_buffer_offset_alignment as u64);
        Ok(Gpu {
            inner: Rc::new(GpuInner {
                device,
                queue,
                adapter: summary(&info),
                is_cpu: info.device_type == wgpu::DeviceType::Cpu,
                subgroups,
                f16,
                subgroup_min_size: info.subgroup_min_size,
                limits,
                pool,
                kernels: RefCell::new(KernelCache::default()),
                recorder: RefCell::new(recorder),
                poison: Cell::new(false),
                flops: Cell::new(0.0),
            }),
        })
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.inner.adapter
    }

    /// True when kernels may store f16 (wgpu's SHADER_F16): `--precision f16` needs it.
    pub fn has_f16(&self) -> bool {
        self.inner.f16
    }

    /// True on a software (CPU) adapter such as lavapipe; kernels pick fatter tiles there.
    pub fn is_cpu(&self) -> bool {
        self.inner.is_cpu
    }

    /// On a CPU adapter, the host's SIMD registers, which lavapipe spends one per scalar of an
    /// invocation: 32 with AVX-512 (or on aarch64), 16 with AVX2 and below. None on a GPU.
    /// Kernels size their register tiles by it.
    pub fn vector_registers(&self) -> Option<u32> {
        if !self.is_cpu() {
            return None;
        }
        #[cfg(target_arch = "x86_64")]
        let registers = match std::arch::is_x86_feature_detected!("avx512f") {
            true => 32,
            false => 16,
        };
        #[cfg(not(target_arch = "x86_64"))]
        let registers = 32;
        Some(registers)
    }

    /// Whether the device was opened with subgroup operations (WGSL `subgroupBroadcast` ...).
    pub fn has_subgroups(&self) -> bool {
        self.inner.subgroups
    }

    /// Whether kernels that share one load among `lanes` lanes by subgroup broadcasts (lane ids
    /// 0 .. lanes - 1) run here: subgroup operations, and no subgroup smaller than `lanes`.
    pub fn has_subgroups_of(&self, lanes: u32) -> bool {
        self.has_subgroups() && self.subgroup_min_size() >= lanes
    }

    /// The smallest subgroup the adapter may run a kernel with.
    pub fn subgroup_min_size(&self) -> u32 {
        self.inner.subgroup_min_size
    }

    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// Fill every buffer handed out from now on with NaN before use (for tests).
    pub fn set_poison(&self, on: bool) {
        self.inner.poison.set(on);
    }

    /// Whether new buffers are filled with NaN ([`Gpu::set_poison`]).
    pub fn poisoned(&self) -> bool {
        self.inner.poison.get()
    }

    pub(crate) fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    pub(crate) fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// Blocks until the GPU has finished all submitted work.
    pub fn wait(&self) -> Result<()> {
        self.flush();
        self.inner
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map(|_| ())
            .map_err(|e| Error::Gpu(format!("waiting for the device failed: {e}")))
    }

    /// Counts `flops` of a convolution or product recorded on a tape (2 per multiply-add).
    pub(crate) fn add_flops(&self, flops: f64) {
        self.inner.flops.set(self.inner.flops.get() + flops);
    }

    /// The flops of every convolution, linear layer and NT-Xent similarity matrix recorded on a
    /// tape since the device was opened, forward and backward passes (`bench-train`'s GFLOP/s;
    /// element-wise kernels and the optimiser are not counted).
    pub fn flops(&self) -> f64 {
        self.inner.flops.get()
    }

    /// Number of buffers the pool has created since the device was opened.
    pub fn buffers_created(&self) -> usize {
        self.inner.pool.borrow().created()
    }
}
