//! Storage buffers reused by size: a training step asks for the same sizes every time, so after
//! the first step no buffer is created.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// The poison fill: NaN as an f32 (0x7fc07fc0) and as each f16 half (0x7fc0).
const POISON: u32 = 0x7fc0_7fc0;

/// Sizes are rounded up to this many bytes so that near-equal requests share buffers.
const GRANULE: u64 = 256;

#[derive(Default)]
pub(crate) struct BufferPool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    created: usize,
}

impl BufferPool {
    pub fn created(&self) -> usize {
        self.created
    }
}

/// A storage buffer borrowed from the pool; it goes back when the last handle is dropped.
pub struct GpuBuffer {
    buffer: Option<wgpu::Buffer>,
    /// Bytes the tensor uses (the buffer itself may be a little larger).
    len: u64,
    pool: Rc<RefCell<BufferPool>>,
}

impl GpuBuffer {
    pub fn raw(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer is present until drop")
    }
    pub fn len_bytes(&self) -> u64 {
        self.len
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            self.pool
                .borrow_mut()
                .free
                .entry(b.size())
                .or_default()
                .push(b);
        }
    }
}

impl Gpu {
    /// An error naming `what` when `bytes` exceed the adapter's storage-binding limit: checked
    /// before a buffer is made, or before data that will need one is built on the CPU.
    pub fn check_fits(&self, bytes: u64, what: &str) -> Result<()> {
        let limit = self.limits().max_storage_buffer_binding_size;
        if bytes > limit {
            return Err(Error::TooLarge {
                what: what.to_string(),
                bytes,
                limit,
                adapter: self.adapter().name.clone(),
            });
        }
        Ok(())
    }

    /// A storage buffer of at least `bytes` bytes (contents undefined, NaN in poison mode).
    /// `what` names the tensor in the error when the adapter cannot hold it.
    pub(crate) fn alloc(&self, bytes: u64, what: &str) -> Result<Rc<GpuBuffer>> {
        self.check_fits(bytes, what)?;
        let size = bytes.max(4).div_ceil(GRANULE) * GRANULE;
        let pool = &self.inner.pool;
        let reused = pool.borrow_mut().free.get_mut(&size).and_then(Vec::pop);
        let buffer = match reused {
            Some(b) => b,
            None => {
                pool.borrow_mut().created += 1;
                self.device().create_buffer(&wgpu::BufferDescriptor {
                    label: Some(what),
                    size,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            }
        };
        let buf = Rc::new(GpuBuffer {
            buffer: Some(buffer),
            len: bytes,
            pool: Rc::clone(pool),
        });
        if self.inner.poison.get() {
            // A NaN read as one f32 and as either of two f16 halves (0x7fc0 each).
            self.fill_u32(&buf, POISON)?;
        }
        Ok(buf)
    }
}
