mod common;

use common::*;
use taming::ops::conv2d::{self as conv, Conv2dConfig, ConvAlgo, ConvShape, Pass};
use taming::reference::conv2d as reference;

/// (input NCHW, weight [Cout, Cin, KH, KW], stride, pad): odd sizes, 1x1 to 5x5, both strides,
/// channel counts on both sides of the implicit product's tiles of 4 and 8-16. Every case runs
/// through every algorithm that accepts its pass (`ConvAlgo::accepts`); a stride-2 input
/// gradient goes by phases, or by dilation for a 3x3 kernel with pad 2 (the subgroup kernel:
/// all four phases of a 3x3 pad-1 kernel in one pass, cases 1, 10, 13, 18, 21 and 22).
const CASES: &[([usize; 4], [usize; 4], usize, usize)] = &[
    ([1, 3, 7, 5], [17, 3, 3, 3], 1, 1),
    ([3, 17, 7, 5], [3, 17, 3, 3], 2, 1),
    ([2, 5, 9, 11], [7, 5, 1, 1], 2, 0),
    ([33, 3, 5, 7], [9, 3, 1, 1], 1, 0),
    ([2, 4, 6, 6], [10, 4, 3, 3], 1, 0),
    ([1, 1, 1, 1], [1, 1, 1, 1], 1, 0),
    ([2, 3, 8, 8], [5, 3, 3, 3], 2, 2),
    ([2, 3, 9, 13], [4, 3, 2, 5], 2, 1),
    ([1, 2, 6, 6], [3, 2, 5, 5], 1, 2),
    ([3, 9, 20, 20], [16, 9, 3, 3], 1, 1),
    ([2, 8, 10, 10], [33, 8, 3, 3], 2, 1),
    // Stride-2 input gradients by phases: 5x5, and 3x3 without padding.
    ([2, 3, 11, 9], [4, 3, 5, 5], 2, 2),
    ([2, 3, 9, 8], [4, 3, 3, 3], 2, 0),
    // The same at 8 outputs wide, where the forward pass and the weight gradient take the
    // direct kernels too: 3x3 pad 1, 5x5 pad 2, 3x3 pad 0, and the dilated path (3x3 pad 2).
    ([2, 3, 16, 15], [4, 3, 3, 3], 2, 1),
    ([2, 3, 15, 15], [4, 3, 5, 5], 2, 2),
    ([2, 3, 17, 17], [4, 3, 3, 3], 2, 0),
    ([2, 3, 13, 13], [4, 3, 3, 3], 2, 2),
    // Channels past one tile of the implicit product (16 or 8 outputs per lane, 4 or 2 vec4s of
    // inputs), and not multiples of 4.
    ([2, 37, 6, 7], [21, 37, 3, 3], 1, 1),
    ([3, 20, 9, 9], [35, 20, 3, 3], 2, 1),
    ([2, 13, 5, 5], [18, 13, 1, 1], 2, 0),
    // More than one 64 x 64 tile of the tiled kernel's rows: output channels (forward pass,
    // weight gradient) and input channels (input gradient).
    ([2, 5, 9, 9], [70, 5, 3, 3], 1, 1),
    ([1, 67, 7, 6], [5, 67, 3, 3], 2, 1),
    // Channels in sixteens: the 16-channel subgroup kernel (forward and input gradients).
    ([2, 16, 11, 9], [32, 16, 3, 3], 2, 1),
    ([1, 32, 7, 10], [16, 32, 3, 3], 1, 1),
    // A non-square kernel at stride 1: im2col folds its input gradient (col2im at stride 1).
    ([2, 3, 7, 8], [4, 3, 2, 3], 1, 1),
    // im2col's products reading x in place of its unfolding at stride 1 (32 or more output
    // channels; case 22 at stride 2).
    ([2, 8, 7, 8], [36, 8, 3, 3], 1, 1),
    // im2col's stride-2 input gradients phase by phase with dy read in place (32 or more input
    // channels): 3x3 pad 1 with a part-filled second block of 32 channels, phases of 45 and 75
    // positions; 5x5 pad 2; 3x3 without padding.
    ([5, 34, 9, 7], [6, 34, 3, 3], 2, 1),
    ([5, 33, 7, 9], [3, 33, 5, 5], 2, 2),
    ([4, 32, 9, 8], [5, 32, 3, 3], 2, 0),
];

#[test]
fn conv2d_forward_and_backward_match_reference_at_odd_shapes() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(3);
    for (i, &(xs, ws, stride, pad)) in CASES.iter().enumerate() {
        let cfg = Conv2dConfig { stride, pad };
        let s = ConvShape::new(&xs, &ws, cfg).unwrap();
        let x = data(&mut r, xs.iter().product());
        let w = data(&mut r, ws.iter().product());
        let b = data(&mut r, ws[0]);
        let dy = data(&mut r, s.output().iter().product());
        let (tx, tw, tb) = (
            upload(&gpu, &xs, &x),
            upload(&gpu, &ws, &w),
            upload(&gpu, &[ws[0]], &b),
        );
        let tdy = upload(&gpu, &s.output(), &dy);
        let y_ref = reference::conv2d_forward(&x, &w, Some(&b), &s);
        let y_ref_no_bias = reference::conv2d_forward(&x, &w, None, &s);
        let dx_ref = reference::conv2d_backward_input(&dy, &w, &s);
        let dw_ref = reference::conv2d_backward_weight(&x, &dy, &s);
        // lavapipe has subgroups of 8: the subgroup kernel must be among those checked here.
        if gpu.adapter().to_string().contains("llvmpipe") && ws[3] <= 4 {
            assert!(ConvAlgo::DirectSubgroup.accepts(Pass::Forward, &s, &gpu));
        }
        for algo in ConvAlgo::ALL {
            let case = format!("case {i} x{xs:?} w{ws:?} s{stride} p{pad} {algo}");
            let some = Some(algo);
            if algo.accepts(Pass::Forward, &s, &gpu) {
                let y = conv::conv2d_forward_with(&tx, &tw, Some(&tb), cfg, some).unwrap();
                assert_eq!(y.shape(), s.output());
                assert_rel_close(&format!("{case} forward"), &download(&y), &y_ref, 1e-5);
                let y = conv::conv2d_forward_with(&tx, &tw, None, cfg, some).unwrap();
                assert_rel_close(
                    &format!("{case} forward no bias"),
                    &download(&y),
                    &y_ref_no_bias,
                    1e-5,
                );
            }
            if algo.accepts(Pass::InputGradient, &s, &gpu) {
                let dx = conv::conv2d_backward_input_with(&tdy, &tw, &xs, cfg, some).unwrap();
                assert_rel_close(
                    &format!("{case} backward_input"),
                    &download(&dx),
                    &dx_ref,
                    1e-5,
                );
            }
            if algo.accepts(Pass::WeightGradient, &s, &gpu) {
                let dw = conv::conv2d_backward_weight_with(&tx, &tdy, &ws, cfg, some).unwrap();
                assert_rel_close(
                    &format!("{case} backward_weight"),
                    &download(&dw),
                    &dw_ref,
                    1e-5,
                );
            }
        }
        let case = format!("case {i} x{xs:?} w{ws:?} s{stride} p{pad}");
        let db = conv::conv2d_backward_bias(&tdy).unwrap();
        assert_rel_close(
            &format!("{case} backward_bias"),
            &download(&db),
            &reference::conv2d_backward_bias(&dy, &s),
            1e-5,
        );
    }
}

/// `--precision f16`: x and the weights stored as f16, read by the tiled kernel (the only one
/// that reads f16, chosen for them whatever the device), sums in f32. Against the reference on
/// the same values rounded to f16, so the bound is f32's, at every case; x alone f16 in the
/// forward pass too (the two operands' storage is set apart), and y stored as f16 is the f32
/// y rounded. Every other algorithm, forced,
/// is refused f16 operands with a message naming the tiled one.
#[test]
fn conv2d_with_f16_operands_matches_reference_at_odd_shapes() {
    use taming::tensor::{DType, Precision};
    let Some(gpu) = gpu() else { return };
    let mut r = rng(6);
    let x = upload_f16(&gpu, &[1, 1, 3, 3], &[0.0; 9]);
    let w = upload(&gpu, &[1, 1, 1, 1], &[0.0]);
    let cfg = Conv2dConfig { stride: 1, pad: 0 };
    if lacks_f16(&gpu, || conv::conv2d_forward(&x, &w, None, cfg)) {
        return;
    }
    for (i, &(xs, ws, stride, pad)) in CASES.iter().enumerate() {
        let cfg = Conv2dConfig { stride, pad };
        let s = ConvShape::new(&xs, &ws, cfg).unwrap();
        let x = round_f16(&data(&mut r, xs.iter().product()));
        let w = round_f16(&data(&mut r, ws.iter().product()));
        let b = data(&mut r, ws[0]);
        let dy = data(&mut r, s.output().iter().product());
        let (hx, hw, tb) = (
            upload_f16(&gpu, &xs, &x),
            upload_f16(&gpu, &ws, &w),
            upload(&gpu, &[ws[0]], &b),
        );
        let tdy = upload(&gpu, &s.output(), &dy);
        let case = format!("case {i} x{xs:?} w{ws:?} s{stride} p{pad} f16");
        let y = conv::conv2d_forward(&hx, &hw, Some(&tb), cfg).unwrap();
        let y_ref = reference::conv2d_forward(&x, &w, Some(&b), &s);
        assert_rel_close(&format!("{case} forward"), &download(&y), &y_ref, 1e-5);
        // y stored as f16 (for batch norm): the f32 y rounded, exactly.
        let y16 = conv::conv2d_forward_stored(&hx, &hw, Some(&tb), cfg, Precision::F16).unwrap();
        assert_eq!(y16.dtype(), DType::F16);
        assert_eq!(
            download(&y16),
            round_f16(&download(&y)),
            "{case} forward, f16 y"
        );
        let y = conv::conv2d_forward(&hx, &upload(&gpu, &ws, &w), Some(&tb), cfg).unwrap();
        assert_rel_close(
            &format!("{case} forward, x alone f16"),
            &download(&y),
            &y_ref,
            1e-5,
        );
        let dx = conv::conv2d_backward_input(&tdy, &hw, &xs, cfg).unwrap();
        let dx_ref = reference::conv2d_backward_input(&dy, &w, &s);
        assert_rel_close(
            &format!("{case} backward_input"),
            &download(&dx),
            &dx_ref,
            1e-5,
        );
        let dw = conv::conv2d_backward_weight(&hx, &tdy, &ws, cfg).unwrap();
        let dw_ref = reference::conv2d_backward_weight(&x, &dy, &s);
        assert_rel_close(
            &format!("{case} backward_weight"),
            &download(&dw),
            &dw_ref,
            1e-5,
        );
        for algo in ConvAlgo::ALL.into_iter().filter(|&a| a != ConvAlgo::Tiled) {
            let msg = conv::conv2d_forward_with(&hx, &hw, None, cfg, Some(algo))
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains("f16") && msg.contains("tiled"),
                "{case} {algo}: {msg}"
            );
        }
    }
    // dy must be f32: an f16 gradient is refused, naming it.
    let (xs, ws) = ([1, 2, 4, 4], [3, 2, 3, 3]);
    let cfg = Conv2dConfig { stride: 1, pad: 1 };
    let hdy = upload_f16(&gpu, &[1, 3, 4, 4], &[0.5; 48]);
    let hw = upload_f16(&gpu, &ws, &[0.5; 54]);
    let msg = conv::conv2d_backward_input(&hdy, &hw, &xs, cfg)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("gradient") && msg.contains("f32"), "{msg}");
}

#[test]
fn conv2d_reference_gradients_match_finite_differences() {
    let mut r = rng(4);
    for &(xs, ws, stride, pad) in &[
        ([2, 3, 5, 4], [4, 3, 3, 3], 2, 1),
        ([1, 2, 3, 3], [3, 2, 1, 1], 1, 0),
    ] {
        let s = ConvShape::new(&xs, &ws, Conv2dConfig { stride, pad }).unwrap();
        let x = data(&mut r, xs.iter().product());
        let w = data(&mut r, ws.iter().product());
        let b = data(&mut r, ws[0]);
        let up = data(&mut r, s.output().iter().product());
        let all = |n: usize| (0..n).collect::<Vec<_>>();
        let fx = finite_difference(
            &mut |x| dot(&up, &reference::conv2d_forward(x, &w, Some(&b), &s)),
            &x,
            &all(x.len()),
            1e-5,
        );
        assert_rel_close(
            "d/dx",
            &reference::conv2d_backward_input(&up, &w, &s),
            &fx,
            1e-7,
        );
        let fw = finite_difference(
            &mut |w| dot(&up, &reference::conv2d_forward(&x, w, Some(&b), &s)),
            &w,
            &all(w.len()),
            1e-5,
        );
        assert_rel_close(
            "d/dw",
            &reference::conv2d_backward_weight(&x, &up, &s),
            &fw,
            1e-7,
        );
        let fb = finite_difference(
            &mut |b| dot(&up, &reference::conv2d_forward(&x, &w, Some(b), &s)),
            &b,
            &all(b.len()),
            1e-5,
        );
        assert_rel_close("d/db", &reference::conv2d_backward_bias(&up, &s), &fb, 1e-7);
    }
}

/// The GPU gradients themselves against finite differences of the GPU forward pass. f32 forward
/// differences carry about 1e-3 relative noise at h = 1e-2, hence the looser bound.
#[test]
fn conv2d_gpu_gradients_match_finite_differences() {
    let Some(gpu) = gpu() else { return };
    let mut r = rng(5);
    let (xs, ws, cfg) = (
        [2, 3, 5, 4],
        [4, 3, 3, 3],
        Conv2dConfig { stride: 2, pad: 1 },
    );
    let s = ConvShape::new(&xs, &ws, cfg).unwrap();
    let x = data(&mut r, xs.iter().product());
    let w = data(&mut r, ws.iter().product());
    let up = data(&mut r, s.output().iter().product());
    let tw = upload(&gpu, &ws, &w);
    let tx = upload(&gpu, &xs, &x);
    let mut loss_x = |x: &[f64]| {
        dot(
            &up,
            &download(&conv::conv2d_forward(&upload(&gpu, &xs, x), &tw, None, cfg).unwrap()),
        )
    };
    let idx: Vec<usize> = (0..x.len()).step_by(7).collect();
    let numeric = finite_difference(&mut loss_x, &x, &idx, 1e-2);
    let dx = download(
        &conv::conv2d_backward_input(&upload(&gpu, &s.output(), &up), &tw, &xs, cfg).unwrap(),
    );
    assert_rel_close(
        "GPU d/dx",
        &idx.iter().map(|&i| dx[i]).collect::<Vec<_>>(),
        &numeric,
        1e-3,
    );
    let mut loss_w = |w: &[f64]| {
        dot(
            &up,
            &download(&conv::conv2d_forward(&tx, &upload(&gpu, &ws, w), None, cfg).unwrap()),
        )
    };
    let idx: Vec<usize> = (0..w.len()).step_by(5).collect();
    let numeric = finite_difference(&mut loss_w, &w, &idx, 1e-2);
    let dw = download(
        &conv::conv2d_backward_weight(&tx, &upload(&gpu, &s.output(), &up), &ws, cfg).unwrap(),
    );
    assert_rel_close(
        "GPU d/dw",
        &idx.iter().map(|&i| dw[i]).collect::<Vec<_>>(),
        &numeric,
        1e-3,
    );
}

#[test]
fn conv2d_rejects_mismatched_channels_naming_both_shapes() {
    let Some(gpu) = gpu() else { return };
    let x = upload(&gpu, &[1, 3, 4, 4], &[0.0; 48]);
    let w = upload(&gpu, &[2, 4, 3, 3], &[0.0; 72]);
    let msg = conv::conv2d_forward(&x, &w, None, Conv2dConfig { stride: 1, pad: 1 })
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("conv2d") && msg.contains("[1, 3, 4, 4]") && msg.contains("[2, 4, 3, 3]"),
        "{msg}"
    );
}

#[test]
fn conv2d_rejects_unsupported_strides_and_widths_with_a_clear_message() {
    let Some(gpu) = gpu() else { return };
    let x = upload(&gpu, &[1, 1, 8, 8], &[0.0; 64]);
    let w = upload(&gpu, &[1, 1, 3, 3], &[0.0; 9]);
    let msg = conv::conv2d_forward(&x, &w, None, Conv2dConfig { stride: 3, pad: 1 })
        .unwrap_err()
        .to_string();
    assert!(msg.contains("conv2d") && msg.contains("stride 3"), "{msg}");
    let w = upload(&gpu, &[1, 1, 1, 7], &[0.0; 7]);
    let msg = conv::conv2d_forward(&x, &w, None, Conv2dConfig { stride: 1, pad: 0 })
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("[1, 1, 1, 7]") && msg.contains("5 x 5"),
        "{msg}"
    );
}

#[test]
fn a_forced_algorithm_that_does_not_compute_a_pass_is_refused_by_name() {
    let Some(gpu) = gpu() else { return };
    // The subgroup forward kernels hand a row of taps through 8 lanes: kernels up to 4 wide.
    let cfg = Conv2dConfig { stride: 1, pad: 2 };
    let w = upload(&gpu, &[2, 3, 5, 5], &[0.0; 150]);
    let x = upload(&gpu, &[1, 3, 6, 6], &[0.0; 108]);
    let msg = conv::conv2d_forward_with(&x, &w, None, cfg, Some(ConvAlgo::DirectSubgroup))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("direct-subgroup") && msg.contains("Forward"),
        "{msg}"
    );
    assert_eq!("IGEMM".parse::<ConvAlgo>(), Ok(ConvAlgo::Igemm));
    assert!("winograd"
        .parse::<ConvAlgo>()
        .unwrap_err()
        .contains("winograd"));
}
