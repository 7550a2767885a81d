//! Recording: all dispatches go into one command encoder that is submitted only when the CPU
//! needs a result (a readback, an upload into a reused buffer, `Gpu::flush`). Kernel parameters
//! are packed into one uniform arena, written once per submit, each at an aligned offset.

use crate::gpu::uniform_struct;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::OnceLock;

use bytemuck::Pod;

use crate::error::{Error, Result};
use crate::gpu::kernels::{Kernel, Shader};
use crate::gpu::pool::GpuBuffer;
use crate::gpu::Gpu;

const ARENA_BYTES: u64 = 1 << 20;

pub(crate) struct Recorder {
    encoder: Option<wgpu::CommandEncoder>,
    arena: wgpu::Buffer,
    staged: Vec<u8>,
    align: u64,
    /// The readback buffer, kept between readbacks (it only grows).
    staging: Option<wgpu::Buffer>,
    /// Dispatches recorded since the device was opened (for benches and tests).
    pub dispatches: u64,
    pub submits: u64,
}

impl Recorder {
    pub fn new(device: &wgpu::Device, align: u64) -> Recorder {
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params arena"),
            size: ARENA_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Recorder {
            encoder: None,
            arena,
            staged: Vec::new(),
            align: align.max(16),
            staging: None,
            dispatches: 0,
            submits: 0,
        }
    }
}

/// How a kernel uses a storage buffer; binding i+1 of the shader is the i-th entry.
pub enum Access<'a> {
    Read(&'a GpuBuffer),
    Write(&'a GpuBuffer),
}

uniform_struct! {
    /// Parameters of the fill kernel of `shaders/elementwise.wgsl`.
    #[derive(Clone, Copy)]
    pub(crate) struct FillParams {
        n: u32,
        bits: u32,
        _pad: [u32; 2],
    }
}

/// Workgroup size of the simple one-dimensional kernels.
pub const WG: u32 = 256;

impl Gpu {
    fn with_encoder<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut rec = self.inner.recorder.borrow_mut();
        let enc = rec.encoder.get_or_insert_with(|| {
            self.device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("step"),
                })
        });
        f(enc)
    }

    /// Records one dispatch of `groups` workgroups (spread over x and y when above the
    /// per-dimension limit; kernels rebuild the linear index from `num_workgroups`).
    pub fn dispatch<P: Pod>(
        &self,
        kernel: &Kernel,
        params: &P,
        buffers: &[Access],
        groups: u32,
    ) -> Result<()> {
        // The pipeline first: a kernel that fails validation records nothing.
        let writable: Vec<bool> = buffers
            .iter()
            .map(|b| matches!(b, Access::Write(_)))
            .collect();
        let (pipeline, layout) = {
            let mut cache = self.inner.kernels.borrow_mut();
            (
                cache.pipeline(self.device(), kernel, &writable)?,
                cache.layout(self.device(), &writable),
            )
        };
        // Profiling: the work recorded before this dispatch finishes first, outside its time.
        let started = if profiling() {
            self.wait()?;
            Some(std::time::Instant::now())
        } else {
            None
        };
        let bytes = bytemuck::bytes_of(params);
        let offset = {
            let mut rec = self.inner.recorder.borrow_mut();
            let mut offset = (rec.staged.len() as u64).div_ceil(rec.align) * rec.align;
            if offset + bytes.len() as u64 > ARENA_BYTES {
                drop(rec);
                self.flush();
                rec = self.inner.recorder.borrow_mut();
                offset = 0;
            }
            rec.staged.resize(offset as usize, 0);
            rec.staged.extend_from_slice(bytes);
            rec.dispatches += 1;
            offset
        };
        let arena = self.inner.recorder.borrow().arena.clone();
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &arena,
                offset,
                size: NonZeroU64::new(bytes.len() as u64),
            }),
        }];
        for (i, b) in buffers.iter().enumerate() {
            let (Access::Read(buf) | Access::Write(buf)) = b;
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: buf.raw(),
                    offset: 0,
                    size: NonZeroU64::new(buf.len_bytes().max(4).div_ceil(4) * 4),
                }),
            });
        }
        let bind_group = self.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.entry),
            layout: &layout,
            entries: &entries,
        });
        let max = self.limits().max_compute_workgroups_per_dimension;
        let (x, y) = if groups <= max {
            (groups.max(1), 1)
        } else {
            (max, groups.div_ceil(max))
        };
        if y > max {
            return Err(Error::Gpu(format!(
                "{}: {groups} workgroups exceed the device's dispatch limit",
                kernel.entry
            )));
        }
        self.with_encoder(|enc| {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel.entry),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        });
        if let Some(t0) = started {
            self.wait()?;
            let seconds = t0.elapsed().as_secs_f64();
            PROFILE.with(|p| {
                let mut p = p.borrow_mut();
                let slot = p.entry(kernel.entry).or_insert((0, 0.0));
                slot.0 += 1;
                slot.1 += seconds;
            });
        }
        Ok(())
    }

    /// Submits everything recorded so far (without waiting for it).
    pub fn flush(&self) {
        let mut rec = self.inner.recorder.borrow_mut();
        if !rec.staged.is_empty() {
            self.queue().write_buffer(&rec.arena, 0, &rec.staged);
            rec.staged.clear();
        }
        if let Some(enc) = rec.encoder.take() {
            rec.submits += 1;
            self.queue().submit([enc.finish()]);
        }
    }

    /// (dispatches, submits) since the device was opened.
    pub fn counters(&self) -> (u64, u64) {
        let rec = self.inner.recorder.borrow();
        (rec.dispatches, rec.submits)
    }

    /// Writes `data` to the start of `buf`. Pending work is submitted first, because a queue
    /// write lands before the commands of the next submit and `buf` may be a recycled buffer
    /// that those commands still read.
    pub(crate) fn upload(&self, buf: &GpuBuffer, data: &[u8]) {
        self.flush();
        if !data.is_empty() {
            let padded;
            let bytes = if data.len() % 4 == 0 {
                data
            } else {
                padded = [data, &[0u8; 3][..4 - data.len() % 4]].concat();
                &padded
            };
            self.queue().write_buffer(buf.raw(), 0, bytes);
        }
    }

    /// Reads the first `len` bytes of `buf` back to the CPU (submits and waits).
    pub(crate) fn download(&self, buf: &GpuBuffer, len: u64) -> Result<Vec<u8>> {
        let size = len.max(4).div_ceil(4) * 4;
        let cached = self
            .inner
            .recorder
            .borrow_mut()
            .staging
            .take()
            .filter(|b| b.size() >= size);
        let staging = cached.unwrap_or_else(|| {
            self.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: size.div_ceil(256) * 256,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        self.with_encoder(|enc| enc.copy_buffer_to_buffer(buf.raw(), 0, &staging, 0, size));
        self.flush();
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|_| Error::Gpu("readback callback never ran".into()))?
            .map_err(|e| Error::Gpu(format!("mapping a readback buffer failed: {e}")))?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| Error::Gpu(format!("readback view: {e}")))?;
        let out = view[..len as usize].to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Records a fill of every 32-bit word of `buf` with `bits`.
    pub(crate) fn fill_u32(&self, buf: &GpuBuffer, bits: u32) -> Result<()> {
        let n = (buf.len_bytes() / 4) as u32;
        let p = FillParams {
            n,
            bits,
            _pad: [0; 2],
        };
        let k = Kernel::new(Shader::Elementwise, "fill").with("WG", WG);
        self.dispatch(&k, &p, &[Access::Write(buf)], n.div_ceil(WG * 4))
    }

    /// Records `out = a + b` over the first `n` f32 values: the gradient accumulation of the
    /// tape, which sits below `ops` in the layer order.
    pub(crate) fn add_f32(
        &self,
        a: &GpuBuffer,
        b: &GpuBuffer,
        out: &GpuBuffer,
        n: usize,
    ) -> Result<()> {
        let n = u32::try_from(n)
            .map_err(|_| Error::InvalidArgument(format!("add: {n} elements exceed u32")))?;
        // The elementwise kernels' parameters: n first, the rest unused by the addition.
        let p = FillParams {
            n,
            bits: 0,
            _pad: [0; 2],
        };
        let k = Kernel::new(Shader::Elementwise, "add_forward").with("WG", WG);
        let bufs = [Access::Read(a), Access::Read(b), Access::Write(out)];
        self.dispatch(&k, &p, &bufs, n.div_ceil(WG * 4))
    }

    /// Records a zero fill of `buf`.
    pub(crate) fn clear(&self, buf: &GpuBuffer) {
        let size = buf.raw().size();
        self.with_encoder(|enc| enc.clear_buffer(buf.raw(), 0, Some(size)));
    }
}

impl Gpu {
    /// Records a copy of `bytes` bytes from `src` at `src_offset` to `dst` at `dst_offset`.
    pub(crate) fn copy(
        &self,
        src: &GpuBuffer,
        src_offset: u64,
        dst: &GpuBuffer,
        dst_offset: u64,
        bytes: u64,
    ) {
        self.with_encoder(|enc| {
            enc.copy_buffer_to_buffer(src.raw(), src_offset, dst.raw(), dst_offset, bytes)
        });
    }
}

/// The time one kernel took over the dispatches recorded while `TAMING_PROFILE` was set.
#[derive(Clone, Debug)]
pub struct KernelTime {
    pub entry: &'static str,
    pub calls: u64,
    pub seconds: f64,
}

/// The environment variable that times every dispatch alone (`take_profile`).
pub const PROFILE_ENV: &str = "TAMING_PROFILE";

thread_local! {
    static PROFILE: RefCell<BTreeMap<&'static str, (u64, f64)>> = RefCell::default();
}

fn profiling() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os(PROFILE_ENV).is_some())
}

/// Where the time went: each kernel's calls and seconds since the last call (empty unless
/// `TAMING_PROFILE` is set). With it set every dispatch is submitted and waited for alone, so
/// the work runs a little slower and each time includes one submit's overhead.
pub fn take_profile() -> Vec<KernelTime> {
    PROFILE
        .with(|p| std::mem::take(&mut *p.borrow_mut()))
        .into_iter()
        .map(|(entry, (calls, seconds))| KernelTime {
            entry,
            calls,
            seconds,
        })
        .collect()
}
