//! The kernel registry: WGSL sources embedded at build time, compiled lazily, pipelines cached
//! by (source, entry point, override constants, binding layout).

use std::collections::HashMap;

use crate::error::{Error, Result};

/// One WGSL file of `shaders/`, holding one kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    Elementwise,
    Conv2d,
    Conv2dSubgroup,
    BatchNorm,
    BatchNormSubgroup,
    Pool,
    Matmul,
    MatmulSubgroup,
    MatmulTiled,
    Reduce,
    L2Norm,
    CrossEntropy,
    Optim,
    AffineSample,
    Augment,
    NtXent,
    Peak,
    PeakSubgroup,
    Conv2dIgemm,
    Conv2dTiled,
    Saliency,
    Stn,
}

/// Each shader's file name under `shaders/` and its text, compiled in; `after F` prepends the
/// file F (declarations two shaders share: WGSL has no includes).
macro_rules! shader_files {
    ($($shader:ident => $file:literal $(after $prefix:literal)?),+ $(,)?) => {
        impl Shader {
            /// Every shader, for tests that look at all of them.
            pub const ALL: &'static [Shader] = &[$(Shader::$shader),+];

            pub fn file_name(self) -> &'static str {
                match self {
                    $(Shader::$shader => $file,)+
                }
            }

            pub fn source(self) -> &'static str {
                match self {
                    $(Shader::$shader => concat!(
                        $(include_str!(concat!("../../shaders/", $prefix)), "\n",)?
                        include_str!(concat!("../../shaders/", $file))
                    ),)+
                }
            }
        }
    };
}

shader_files! {
    Elementwise => "elementwise.wgsl",
    Conv2d => "conv2d.wgsl" after "conv2d_direct.wgsl",
    Conv2dSubgroup => "conv2d_subgroup.wgsl" after "conv2d_direct.wgsl",
    BatchNorm => "batchnorm.wgsl",
    BatchNormSubgroup => "batchnorm_subgroup.wgsl" after "batchnorm.wgsl",
    Pool => "pool.wgsl",
    Matmul => "matmul.wgsl",
    MatmulSubgroup => "matmul_subgroup.wgsl" after "matmul.wgsl",
    MatmulTiled => "matmul_tiled.wgsl",
    Reduce => "reduce.wgsl",
    L2Norm => "l2norm.wgsl",
    CrossEntropy => "cross_entropy.wgsl",
    Optim => "optim.wgsl",
    AffineSample => "affine_sample.wgsl",
    Augment => "augment.wgsl",
    NtXent => "ntxent.wgsl",
    Peak => "peak.wgsl",
    PeakSubgroup => "peak_subgroup.wgsl" after "peak.wgsl",
    Conv2dIgemm => "conv2d_igemm.wgsl",
    Conv2dTiled => "conv2d_tiled.wgsl",
    Saliency => "saliency.wgsl",
    Stn => "stn.wgsl",
}

/// What a shader's storage alias (`alias NAME = f32;`) holds: f32, or f16 where the device
/// has SHADER_F16 (`Gpu::has_f16`). WGSL cannot choose a type by an `override` constant, so
/// an f16 kernel is its own module: the alias line rewritten and `enable f16;` in front.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Storage {
    F32,
    F16,
}

/// A kernel: an entry point of a shader file plus its `override` constants (tile sizes, modes)
/// and the types of its storage aliases where they are not f32.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub shader: Shader,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, f64)>,
    pub storage: Vec<(&'static str, Storage)>,
}

impl Kernel {
    pub fn new(shader: Shader, entry: &'static str) -> Kernel {
        Kernel {
            shader,
            entry,
            constants: Vec::new(),
            storage: Vec::new(),
        }
    }
    /// Sets the override constant `name` (replacing an earlier value of it).
    pub fn with(mut self, name: &'static str, value: u32) -> Kernel {
        self.constants.retain(|(n, _)| *n != name);
        self.constants.push((name, value as f64));
        self
    }

    /// Sets what the shader's storage alias `alias` holds (f32 unless set).
    pub fn storing(mut self, alias: &'static str, storage: Storage) -> Kernel {
        self.storage.retain(|(n, _)| *n != alias);
        if storage != Storage::F32 {
            self.storage.push((alias, storage));
            self.storage.sort();
        }
        self
    }

    /// The shader's text with the storage aliases this kernel sets rewritten; an error naming
    /// the alias if the shader does not declare it as f32.
    fn source(&self) -> Result<std::borrow::Cow<'static, str>> {
        let mut text = std::borrow::Cow::Borrowed(self.shader.source());
        if self.storage.is_empty() {
            return Ok(text);
        }
        for &(alias, storage) in &self.storage {
            let declared = format!("alias {alias} = f32;");
            if !text.contains(&declared) {
                return Err(Error::Gpu(format!(
                    "shaders/{} declares no `{declared}` to store as {storage:?}",
                    self.shader.file_name()
                )));
            }
            let wanted = match storage {
                Storage::F32 => "f32",
                Storage::F16 => "f16",
            };
            text = text
                .replace(&declared, &format!("alias {alias} = {wanted};"))
                .into();
        }
        Ok(format!("enable f16;\n{text}").into())
    }
}

#[derive(PartialEq, Eq, Hash)]
struct PipelineKey {
    shader: Shader,
    storage: Vec<(&'static str, Storage)>,
    entry: &'static str,
    constants: Vec<(&'static str, u64)>,
    writable: Vec<bool>,
}

/// A shader module: its file and the storage aliases it rewrites.
type ModuleKey = (Shader, Vec<(&'static str, Storage)>);

#[derive(Default)]
pub(crate) struct KernelCache {
    modules: HashMap<ModuleKey, wgpu::ShaderModule>,
    /// Keyed by which storage bindings are writable (binding 0 is always the params uniform).
    layouts: HashMap<Vec<bool>, (wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: HashMap<PipelineKey, wgpu::ComputePipeline>,
}

impl KernelCache {
    pub fn layout(&mut self, device: &wgpu::Device, writable: &[bool]) -> wgpu::BindGroupLayout {
        self.layout_pair(device, writable).0.clone()
    }

    fn layout_pair(
        &mut self,
        device: &wgpu::Device,
        writable: &[bool],
    ) -> &(wgpu::BindGroupLayout, wgpu::PipelineLayout) {
        self.layouts.entry(writable.to_vec()).or_insert_with(|| {
            let mut entries = vec![wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            }];
            for (i, &w) in writable.iter().enumerate() {
                entries.push(wgpu::BindGroupLayoutEntry {
                    binding: i as u32 + 1,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: !w },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                });
            }
            let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: None,
                entries: &entries,
            });
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: None,
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            });
            (bgl, pl)
        })
    }

    /// The pipeline of `kernel` for bindings of `writable`, made on first use. The shader
    /// module and the pipeline are made inside a validation error scope, so a shader that some
    /// backend refuses is an error naming the shader and the entry point, not a panic.
    pub fn pipeline(
        &mut self,
        device: &wgpu::Device,
        kernel: &Kernel,
        writable: &[bool],
    ) -> Result<wgpu::ComputePipeline> {
        let key = PipelineKey {
            shader: kernel.shader,
            storage: kernel.storage.clone(),
            entry: kernel.entry,
            constants: kernel
                .constants
                .iter()
                .map(|&(n, v)| (n, v.to_bits()))
                .collect(),
            writable: writable.to_vec(),
        };
        if let Some(p) = self.pipelines.get(&key) {
            return Ok(p.clone());
        }
        let refused = |what: &str, e: wgpu::Error| {
            Error::Gpu(format!(
                "the {what} of shaders/{} (entry point {}) failed validation on this adapter: {e}",
                kernel.shader.file_name(),
                kernel.entry
            ))
        };
        let module_key = (kernel.shader, kernel.storage.clone());
        let module = match self.modules.get(&module_key) {
            Some(m) => m.clone(),
            None => {
                let source = kernel.source()?;
                let module = validated(device, || {
                    device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(&format!("{:?}", kernel.shader)),
                        source: wgpu::ShaderSource::Wgsl(source),
                    })
                })
                .map_err(|e| refused("module", e))?;
                self.modules.insert(module_key, module.clone());
                module
            }
        };
        let layout = self.layout_pair(device, writable).1.clone();
        let pipeline = validated(device, || {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry),
                layout: Some(&layout),
                module: &module,
                entry_point: Some(kernel.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &kernel.constants,
                    // Every kernel writes its workgroup memory before reading it.
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            })
        })
        .map_err(|e| refused("pipeline", e))?;
        self.pipelines.insert(key, pipeline.clone());
        Ok(pipeline)
    }
}

/// What `make` makes on `device`, or the validation error it raised.
fn validated<T>(
    device: &wgpu::Device,
    make: impl FnOnce() -> T,
) -> std::result::Result<T, wgpu::Error> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let made = make();
    match pollster::block_on(scope.pop()) {
        Some(e) => Err(e),
        None => Ok(made),
    }
}
