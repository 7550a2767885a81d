//! The Rust mirrors of the shaders' uniform structs. Every kernel's parameters are a
//! `#[repr(C)]` struct copied byte for byte into a WGSL `var<uniform>`; `uniform_struct!`
//! declares one and records its field offsets and size, and a test reflects every shader with
//! naga and checks that each WGSL struct has its mirror's size and named fields at the same
//! offsets (padding fields, named `_...`, may differ).

/// A mirror's size and its named fields' byte offsets.
#[derive(Clone, Copy, Debug)]
pub struct UniformLayout {
    pub size: usize,
    pub fields: &'static [(&'static str, usize)],
}

/// Declares a `#[repr(C)]`, `Pod` uniform struct with its `LAYOUT`.
macro_rules! uniform_struct {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $($(#[$fmeta])* $fvis $field: $ty),+
        }

        impl $name {
            /// What the shader's struct must match (tested against the WGSL with naga).
            #[allow(dead_code)]
            pub(crate) const LAYOUT: $crate::gpu::UniformLayout = $crate::gpu::UniformLayout {
                size: std::mem::size_of::<$name>(),
                fields: &[$((stringify!($field), std::mem::offset_of!($name, $field))),+],
            };
        }
    };
}

pub(crate) use uniform_struct;

#[cfg(test)]
mod tests {
    use super::UniformLayout;
    use crate::gpu::Shader;

    /// Every mirror: the shader, the WGSL struct's name and the Rust layout.
    fn mirrors() -> Vec<(Shader, &'static str, UniformLayout)> {
        use crate::ops;
        vec![
            (
                Shader::Elementwise,
                "Params",
                ops::elementwise::Params::LAYOUT,
            ),
            (
                Shader::Elementwise,
                "Params",
                crate::gpu::recorder::FillParams::LAYOUT,
            ),
            (
                Shader::Conv2d,
                "PadParams",
                ops::conv2d::direct::PadParams::LAYOUT,
            ),
            (
                Shader::Conv2d,
                "PackParams",
                ops::conv2d::direct::PackParams::LAYOUT,
            ),
            (
                Shader::Conv2d,
                "ConvParams",
                ops::conv2d::direct::ConvParams::LAYOUT,
            ),
            (
                Shader::Conv2d,
                "PhaseParams",
                ops::conv2d::phases::PhaseParams::LAYOUT,
            ),
            (
                Shader::Conv2d,
                "ColParams",
                ops::conv2d::im2col::ColParams::LAYOUT,
            ),
            (
                Shader::Conv2dSubgroup,
                "ConvParams",
                ops::conv2d::direct::ConvParams::LAYOUT,
            ),
            (
                Shader::Conv2dIgemm,
                "NhwcParams",
                ops::conv2d::igemm::NhwcParams::LAYOUT,
            ),
            (
                Shader::Conv2dIgemm,
                "PackParams",
                ops::conv2d::igemm::PackParams::LAYOUT,
            ),
            (
                Shader::Conv2dIgemm,
                "IgemmParams",
                ops::conv2d::igemm::IgemmParams::LAYOUT,
            ),
            (
                Shader::Conv2dTiled,
                "Params",
                ops::conv2d::tiled::TiledParams::LAYOUT,
            ),
            (Shader::BatchNorm, "Params", ops::batchnorm::Params::LAYOUT),
            (
                Shader::BatchNormSubgroup,
                "Params",
                ops::batchnorm::Params::LAYOUT,
            ),
            (Shader::Pool, "Params", ops::pool::Params::LAYOUT),
            (Shader::Matmul, "Params", ops::linear::Params::LAYOUT),
            (Shader::MatmulTiled, "Params", ops::linear::Params::LAYOUT),
            (
                Shader::Matmul,
                "BroadcastParams",
                ops::linear::BroadcastParams::LAYOUT,
            ),
            (
                Shader::MatmulSubgroup,
                "Params",
                ops::linear::Params::LAYOUT,
            ),
            (
                Shader::MatmulSubgroup,
                "BroadcastParams",
                ops::linear::BroadcastParams::LAYOUT,
            ),
            (Shader::Reduce, "Params", ops::reduce::Params::LAYOUT),
            (Shader::L2Norm, "Params", ops::l2norm::Params::LAYOUT),
            (
                Shader::CrossEntropy,
                "Params",
                ops::cross_entropy::Params::LAYOUT,
            ),
            (
                Shader::Optim,
                "Params",
                crate::optim::update::UpdateParams::LAYOUT,
            ),
            (
                Shader::AffineSample,
                "Params",
                ops::affine_sample::Params::LAYOUT,
            ),
            (
                Shader::Augment,
                "Params",
                ops::blur_normalize::Params::LAYOUT,
            ),
            (Shader::NtXent, "Params", ops::ntxent::Params::LAYOUT),
            (Shader::Peak, "PeakParams", ops::peak::PeakParams::LAYOUT),
            (Shader::Saliency, "Params", ops::saliency::Params::LAYOUT),
            (Shader::Stn, "Params", ops::stn::Params::LAYOUT),
            (
                Shader::PeakSubgroup,
                "PeakParams",
                ops::peak::PeakParams::LAYOUT,
            ),
        ]
    }

    /// A WGSL struct: its name, its size and its members' (name, offset).
    type WgslStruct = (String, usize, Vec<(String, usize)>);

    /// The structs a shader binds as `var<uniform>`.
    fn uniform_structs(shader: Shader) -> Vec<WgslStruct> {
        let module = naga::front::wgsl::parse_str(shader.source())
            .unwrap_or_else(|e| panic!("{}: {e}", shader.file_name()));
        let mut out = Vec::new();
        for (_, var) in module.global_variables.iter() {
            if var.space != naga::AddressSpace::Uniform {
                continue;
            }
            let ty = &module.types[var.ty];
            let naga::TypeInner::Struct { members, span } = &ty.inner else {
                panic!("{}: a uniform that is not a struct", shader.file_name());
            };
            let members = members
                .iter()
                .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize))
                .collect();
            out.push((ty.name.clone().unwrap_or_default(), *span as usize, members));
        }
        out
    }

    #[test]
    fn every_uniform_struct_of_every_shader_matches_its_rust_mirror() {
        let mirrors = mirrors();
        let mut wrong = Vec::new();
        for &shader in Shader::ALL {
            for (name, span, members) in uniform_structs(shader) {
                let file = shader.file_name();
                let mine: Vec<&UniformLayout> = (mirrors.iter())
                    .filter(|(s, n, _)| *s == shader && *n == name)
                    .map(|(_, _, l)| l)
                    .collect();
                if mine.is_empty() {
                    wrong.push(format!(
                        "{file}: struct {name} has no Rust mirror in the test"
                    ));
                }
                for layout in mine {
                    if layout.size != span {
                        wrong.push(format!(
                            "{file}: struct {name} is {span} bytes, its mirror {}",
                            layout.size
                        ));
                    }
                    for &(field, offset) in
                        layout.fields.iter().filter(|(f, _)| !f.starts_with('_'))
                    {
                        match members.iter().find(|(m, _)| m == field) {
                            Some((_, o)) if *o == offset => {}
                            Some((_, o)) => wrong.push(format!(
                                "{file}: {name}.{field} is at byte {o}, its mirror's at {offset}"
                            )),
                            None => wrong.push(format!(
                                "{file}: {name} has no field {field}, which its mirror has"
                            )),
                        }
                    }
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
