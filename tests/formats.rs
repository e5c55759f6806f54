//! Sparse formats: every invalid CSR is rejected with the right error; round trips; CPU conversions against naive
//! loops; random shapes and densities including empty matrices, single rows and empty rows.
mod common;
use proptest::prelude::*;
use sparse_lowrank::*;

#[test]
fn csr_pattern_rejects_each_invalid_case_with_its_error() {
    let err = |r: Result<CsrPattern<u32>>| match r {
        Err(Error::InvalidCsr(e)) => e,
        other => panic!("expected InvalidCsr, got {other:?}"),
    };
    assert_eq!(err(CsrPattern::new(2, 3, vec![0, 1], vec![0])), CsrError::OffsetsLength { expected: 3, got: 2 });
    assert_eq!(err(CsrPattern::new(1, 3, vec![1, 1], vec![0])), CsrError::OffsetsStart { got: 1 });
    assert_eq!(err(CsrPattern::new(2, 3, vec![0, 2, 1], vec![0, 1])), CsrError::OffsetsDecreasing { row: 1 });
    assert_eq!(err(CsrPattern::new(1, 3, vec![0, 1], vec![0, 1])), CsrError::OffsetsEnd { last: 1, nnz: 2 });
    assert_eq!(err(CsrPattern::new(1, 3, vec![0, 1], vec![3])), CsrError::ColumnOutOfRange { row: 0, entry: 0, col: 3, cols: 3 });
    assert_eq!(err(CsrPattern::new(1, 3, vec![0, 2], vec![2, 1])), CsrError::ColumnsNotIncreasing { row: 0, entry: 1 });
    assert_eq!(err(CsrPattern::new(1, 3, vec![0, 2], vec![1, 1])), CsrError::ColumnsNotIncreasing { row: 0, entry: 1 });
    assert_eq!(
        err(CsrPattern::from_coo(2, 2, &[(0, 0), (2, 1)])),
        CsrError::CooOutOfRange { entry: 1, row: 2, col: 1, rows: 2, cols: 2 }
    );
    // i32 indices: negative values and sizes past i32::MAX.
    match CsrPattern::<i32>::new(1, 3, vec![0, 1], vec![-1]) {
        Err(Error::InvalidCsr(CsrError::ColumnOutOfRange { col: -1, .. })) => {}
        other => panic!("negative column: {other:?}"),
    }
    match CsrPattern::<i32>::new(1, 3, vec![-1, 0], vec![]) {
        Err(Error::InvalidCsr(CsrError::OffsetsStart { got: -1 })) => {}
        other => panic!("negative offset: {other:?}"),
    }
    match CsrPattern::<i32>::empty(1, i32::MAX as usize + 1) {
        Err(Error::InvalidCsr(CsrError::TooLargeForIndex { what: "cols", .. })) => {}
        other => panic!("too many columns for i32: {other:?}"),
    }
    match CsrPattern::<u32>::empty(1, u32::MAX as usize + 1) {
        Err(Error::InvalidCsr(CsrError::TooLargeForIndex { what: "cols", .. })) => {}
        other => panic!("too many columns for u32: {other:?}"),
    }
    // Too many rows for the index: refused before the offsets are allocated (rows + 1 overflowed, or the
    // allocation failed, before the check ran).
    for rows in [usize::MAX, usize::MAX / 2, 1 << 40] {
        match CsrPattern::<u32>::empty(rows, 1) {
            Err(Error::InvalidCsr(CsrError::TooLargeForIndex { what: "rows", .. })) => {}
            other => panic!("{rows} rows for u32: {other:?}"),
        }
    }
}

#[test]
fn a_dense_copy_too_large_to_allocate_is_an_error_from_try_to_dense() {
    // 2^20 + 1 rows of 2^32 - 1 columns: a valid empty pattern whose dense form (2^52 f32) no machine holds.
    let csr = Csr::<f32>::new(CsrPattern::<u32>::empty((1 << 20) + 1, u32::MAX as usize).unwrap(), vec![]).unwrap();
    assert!(matches!(csr.try_to_dense(Layout::RowMajor), Err(Error::WorkspaceTooLarge { op: "Csr::to_dense", .. })));
    let small = Csr::<f32>::from_coo(2, 3, &[(0, 1, 2.0), (1, 2, 3.0)]).unwrap();
    assert_eq!(small.try_to_dense(Layout::RowMajor).unwrap(), small.to_dense(Layout::RowMajor));
    assert_eq!(small.to_dense(Layout::ColMajor), vec![0.0, 0.0, 2.0, 0.0, 0.0, 3.0]);
}

#[test]
fn host_call_differences_saturate() {
    let one = HostCalls { launches: 1, synchronizations: 2, ..Default::default() };
    assert_eq!(HostCalls::default() - one, HostCalls::default());
    assert_eq!((one - HostCalls::default()).synchronizations, 2);
}

#[test]
fn csr_values_must_match_nnz() {
    let p = CsrPattern::<u32>::from_coo(2, 2, &[(0, 1), (1, 0)]).unwrap();
    assert!(matches!(Csr::new(p.clone(), vec![1.0f32]), Err(Error::LengthMismatch { expected: 2, got: 1, .. })));
    assert!(Csr::new(p, vec![1.0f32, 2.0]).is_ok());
}

#[test]
fn empty_matrices_and_empty_rows_are_valid() {
    for (r, c) in [(0, 0), (0, 5), (5, 0), (3, 3)] {
        let p = CsrPattern::<u32>::empty(r, c).unwrap();
        assert_eq!(p.nnz(), 0);
        assert_eq!(p.row_offsets().len(), r + 1);
    }
    let p = CsrPattern::<u32>::new(4, 3, vec![0, 0, 2, 2, 3], vec![0, 2, 1]).unwrap();
    assert_eq!(p.iter().collect::<Vec<_>>(), vec![(0, 1, 0), (1, 1, 2), (2, 3, 1)]);
}

#[test]
fn coo_duplicates_are_summed_in_f32_and_rounded_once() {
    let b = half::bf16::from_f32;
    let eps = 3.0 / 1024.0; // 3 * 2^-10, exact in bf16
    let t = [(1, 1, b(1.0)), (0, 2, b(0.5)), (1, 1, b(eps)), (1, 1, b(eps))];
    let csr = Csr::<half::bf16, u32>::from_coo(2, 3, &t).unwrap();
    assert_eq!(csr.pattern().row_offsets(), &[0, 1, 2]);
    assert_eq!(csr.pattern().col_indices(), &[2, 1]);
    // Summed in f32: 1 + 0.75 * 2^-7, which rounds to 1 + 2^-7 (bf16 spacing at 1 is 2^-7). Rounding after each
    // addition would give 1.0 twice over.
    assert_eq!(csr.values(), &[b(0.5), b(1.0 + 1.0 / 128.0)]);
}

#[test]
fn dense_views_check_leading_dimension_and_length() {
    let data = vec![0f32; 11];
    assert!(matches!(MatRef::new(&data, 3, 4, 3, Layout::RowMajor), Err(Error::InvalidLeadingDimension { ld: 3, min: 4, .. })));
    assert!(matches!(MatRef::new(&data, 3, 4, 4, Layout::RowMajor), Err(Error::BufferTooSmall { needed: 12, got: 11, .. })));
    // A leading dimension whose extent overflows usize needs more than any buffer: refused, not taken as 0.
    for (rows, cols, layout) in [(2, 1, Layout::RowMajor), (1, 2, Layout::ColMajor), (3, 3, Layout::RowMajor)] {
        let e = MatRef::new(&data, rows, cols, usize::MAX, layout).unwrap_err();
        assert!(matches!(e, Error::BufferTooSmall { needed: usize::MAX, got: 11, .. }), "{rows}x{cols} {layout:?}: {e:?}");
        assert_eq!(DenseShape { rows, cols, ld: usize::MAX, layout }.required_len(), usize::MAX, "{rows}x{cols} {layout:?}");
    }
    // 2 x 2^63 overflows; 1 x 2^63 + 1 does not (that many elements are needed, and refused as too many).
    assert_eq!(DenseShape { rows: 3, cols: 3, ld: 1 << 63, layout: Layout::RowMajor }.required_len(), usize::MAX);
    assert_eq!(DenseShape { rows: 2, cols: 1, ld: 1 << 63, layout: Layout::RowMajor }.required_len(), (1 << 63) + 1);
    // Zero-sized elements: a slice of usize::MAX of them does not hold a shape whose extent overflows.
    let units = vec![(); usize::MAX];
    assert!(matches!(MatRef::new(&units, 1 << 32, 1 << 32, 1 << 32, Layout::RowMajor), Err(Error::BufferTooSmall { needed: usize::MAX, .. })));
    assert!(MatRef::new(&units, 1 << 20, 1 << 20, 1 << 20, Layout::RowMajor).is_ok());
    // One row (or column) needs only its contiguous extent, whatever ld.
    assert!(MatRef::new(&data, 1, 4, usize::MAX, Layout::RowMajor).is_ok());
    // ld = 5 row-major 2x4 needs (2-1)*5+4 = 9 elements.
    let m = MatRef::new(&data, 2, 4, 5, Layout::RowMajor).unwrap();
    assert_eq!(m.shape().offset(1, 3), 8);
    let m = MatRef::new(&data, 4, 2, 5, Layout::ColMajor).unwrap();
    assert_eq!(m.shape().offset(3, 1), 8);
    assert!(MatRef::<f32>::new(&[], 0, 7, 7, Layout::RowMajor).is_ok());
}

fn dense_strategy() -> impl Strategy<Value = (usize, usize, Vec<f32>, f64)> {
    (0usize..12, 0usize..12, 0.0f64..=1.0).prop_flat_map(|(r, c, d)| {
        (Just(r), Just(c), proptest::collection::vec(-4.0f32..4.0, r * c), Just(d))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn dense_to_csr_to_dense_round_trips((rows, cols, data, density) in dense_strategy(), col_major in any::<bool>()) {
        let layout = if col_major { Layout::ColMajor } else { Layout::RowMajor };
        let shape = DenseShape::packed(rows, cols, layout);
        // Keep roughly `density` of the entries, decided by a hash of the position (not the value).
        let keep = |r: usize, c: usize| ((r * 31 + c * 17) % 97) as f64 / 97.0 < density;
        let mut masked = vec![0f32; rows * cols];
        for r in 0..rows { for c in 0..cols { if keep(r, c) { masked[shape.offset(r, c)] = data[shape.offset(r, c)]; } } }
        let m = MatRef::new(&data, rows, cols, shape.ld, layout).unwrap();
        let csr = Csr::<f32, u32>::from_dense(m, |r, c, _| keep(r, c)).unwrap();
        // Naive count and order.
        let mut expect = Vec::new();
        for r in 0..rows { for c in 0..cols { if keep(r, c) { expect.push((r, c, data[shape.offset(r, c)])); } } }
        let got: Vec<_> = csr.pattern().iter().map(|(e, r, c)| (r, c, csr.values()[e])).collect();
        prop_assert_eq!(&got, &expect);
        prop_assert_eq!(csr.to_dense(layout), masked);
        // COO in shuffled order gives the same CSR.
        let mut trip = expect.clone();
        trip.reverse();
        let from_coo = Csr::<f32, u32>::from_coo(rows, cols, &trip).unwrap();
        prop_assert_eq!(&from_coo, &csr);
        // The pattern re-validates from its parts, with either index type.
        let (off, idx) = csr.pattern().clone().into_parts();
        prop_assert!(CsrPattern::new(rows, cols, off.clone(), idx.clone()).is_ok());
        let off32: Vec<i32> = off.iter().map(|&x| x as i32).collect();
        let idx32: Vec<i32> = idx.iter().map(|&x| x as i32).collect();
        prop_assert!(CsrPattern::<i32>::new(rows, cols, off32, idx32).is_ok());
    }

    #[test]
    fn bitmask_round_trips_through_pattern((rows, cols, data, density) in dense_strategy()) {
        let m = MatRef::row_major(&data, rows, cols).unwrap();
        let keep = |_r: usize, _c: usize, v: f32| (v.abs() / 4.0) < density as f32;
        let mask = BitMask::from_dense_predicate(m, keep);
        let pattern = CsrPattern::<u32>::from_dense_predicate(m, keep).unwrap();
        prop_assert_eq!(mask.count_ones(), pattern.nnz());
        prop_assert_eq!(&BitMask::from_pattern(&pattern), &mask);
        prop_assert_eq!(mask.to_pattern::<u32>().unwrap(), pattern);
        for r in 0..rows { for c in 0..cols { prop_assert_eq!(mask.get(r, c), keep(r, c, data[r * cols + c])); } }
        // No stray bits past rows*cols.
        let n = rows * cols;
        if n % 64 != 0 { prop_assert_eq!(mask.words().last().unwrap() >> (n % 64), 0); }
    }
}

/// `Gpu::new` raises the device pool's release threshold (so scratch freed by one call is reused by the next
/// instead of being unmapped at every synchronization), and the setter round-trips. On the emulator there is no
/// pool: `None`, and setting is a no-op.
#[test]
fn gpu_new_keeps_freed_memory_in_the_pool_and_the_threshold_can_be_set_back() {
    if let Some(gpu) = common::cuda_or_skip("pool_release_threshold") {
        if let Some(t) = gpu.memory_pool_release_threshold().unwrap() {
            assert_eq!(t, u64::MAX, "Gpu::new sets the release threshold to keep freed memory");
            gpu.set_memory_pool_release_threshold(0).unwrap();
            assert_eq!(gpu.memory_pool_release_threshold().unwrap(), Some(0));
            gpu.set_memory_pool_release_threshold(u64::MAX).unwrap();
            assert_eq!(gpu.memory_pool_release_threshold().unwrap(), Some(u64::MAX));
        } else {
            eprintln!("pool_release_threshold: this device has no memory pools (synchronous allocation)");
        }
    }
    #[cfg(feature = "emulator")]
    {
        let emu = Gpu::emulated(Schedule::RoundRobin);
        emu.set_memory_pool_release_threshold(12345).unwrap();
        assert_eq!(emu.memory_pool_release_threshold().unwrap(), None);
    }
}

/// A buffer crosses handles only where that is sound (GPU only; the emulator has one stream): one of another stream
/// is refused (`WrongStream`), by ops and by downloads, as a buffer or as a bare `CudaView`, even where cudarc tracks
/// events on both sides; so is one whose context object tracks events used by a handle whose context object does
/// not, on the same stream; handles on the device's legacy default stream (`Gpu::new`, `Gpu::new_untracked`) share
/// it, and a handle on a tracking context object's stream takes that stream's buffers.
#[test]
fn buffers_of_another_stream_are_refused() {
    let Some(a) = common::cuda_or_skip("wrong_stream") else { return };
    let pattern = CsrPattern::<u32>::from_coo(2, 3, &[(0, 0), (1, 2)]).unwrap();
    let w = vec![1f32, 2.0, 3.0, 4.0, 5.0, 6.0];
    let wrong_stream = |e: Error| assert!(matches!(e, Error::WrongStream { op: "gather", .. }), "{e:?}");
    // A handle on a stream of its own, from a context object with cudarc's events on (now in multi-stream mode).
    let ctx = cudarc::driver::CudaContext::new(0).unwrap();
    let b = Gpu::from_stream(ctx.new_stream().unwrap()).unwrap();
    let (pa, pb) = (DeviceCsrPattern::upload(&a, &pattern).unwrap(), DeviceCsrPattern::upload(&b, &pattern).unwrap());
    let (wa, wb) = (a.upload(&w).unwrap(), b.upload(&w).unwrap());
    let (mut out_a, mut out_b) = (a.alloc_zeros::<f32>(2).unwrap(), b.alloc_zeros::<f32>(2).unwrap());
    // a's buffer on b's stream, and b's on a's: refused, as buffers and as bare views.
    wrong_stream(gather(&b, &pb, DeviceMatRef::row_major(&wa, 2, 3).unwrap(), &mut out_b).unwrap_err());
    assert!(matches!(b.download(&wa), Err(Error::WrongStream { op: "download", .. })));
    wrong_stream(gather(&a, &pa, DeviceMatRef::row_major(&wb, 2, 3).unwrap(), &mut out_a).unwrap_err());
    wrong_stream(gather(&a, &pa, DeviceMatRef::row_major(wb.as_cuda().unwrap().as_view(), 2, 3).unwrap(), &mut out_a).unwrap_err());
    // A second stream of b's context object: both sides track events, still another stream.
    let c = Gpu::from_stream(ctx.new_stream().unwrap()).unwrap();
    let pc = DeviceCsrPattern::upload(&c, &pattern).unwrap();
    let mut out_c = c.alloc_zeros::<f32>(2).unwrap();
    wrong_stream(gather(&c, &pc, DeviceMatRef::row_major(&wb, 2, 3).unwrap(), &mut out_c).unwrap_err());
    // b's own stream takes b's buffers.
    gather(&b, &pb, DeviceMatRef::row_major(&wb, 2, 3).unwrap(), &mut out_b).unwrap();
    assert_eq!(b.download(&out_b).unwrap(), vec![1.0, 6.0]);
    // The legacy default stream of b's (tracking) context object holds a buffer that a's handle, on the same stream
    // but with a context object that tracks nothing, would use unrecorded: refused; a handle on that stream from
    // b's context object takes it.
    let d = Gpu::from_stream(ctx.default_stream()).unwrap();
    let wd = d.upload(&w).unwrap();
    wrong_stream(gather(&a, &pa, DeviceMatRef::row_major(&wd, 2, 3).unwrap(), &mut out_a).unwrap_err());
    let pd = DeviceCsrPattern::upload(&d, &pattern).unwrap();
    let mut out_d = d.alloc_zeros::<f32>(2).unwrap();
    gather(&d, &pd, DeviceMatRef::row_major(&wd, 2, 3).unwrap(), &mut out_d).unwrap();
    assert_eq!(d.download(&out_d).unwrap(), vec![1.0, 6.0]);
    // An untracked handle is on the same legacy default stream as a.
    // SAFETY: its one buffer is used only through our ops on handles of that stream.
    let u = unsafe { Gpu::new_untracked(0) }.unwrap();
    let wu = u.upload(&w).unwrap();
    let mut out_a = a.alloc_zeros::<f32>(2).unwrap();
    gather(&a, &pa, DeviceMatRef::row_major(&wu, 2, 3).unwrap(), &mut out_a).unwrap();
    assert_eq!(a.download(&out_a).unwrap(), vec![1.0, 6.0]);
    // ... but not on b's stream, as a bare view either.
    wrong_stream(gather(&b, &pb, DeviceMatRef::row_major(wu.as_cuda().unwrap().as_view(), 2, 3).unwrap(), &mut out_b).unwrap_err());
    // A bare view of a's buffer on a: same stream, accepted.
    let view = wa.as_cuda().unwrap().as_view();
    let mut out_a = a.alloc_zeros::<f32>(2).unwrap();
    gather(&a, &pa, DeviceMatRef::row_major(view, 2, 3).unwrap(), &mut out_a).unwrap();
    assert_eq!(a.download(&out_a).unwrap(), vec![1.0, 6.0]);
}

/// A cudarc buffer whose length lies (cudarc 0.19's `alloc_zeros` multiplies the byte count without a check, so
/// 2^62 + 1 f32s is a 4-byte allocation) is refused (`TooLarge`; a shorter view cut from it is not caught).
#[test]
fn a_cudarc_buffer_whose_byte_length_overflows_is_refused() {
    let Some(a) = common::cuda_or_skip("lying_length") else { return };
    let stream = a.cuda_stream().unwrap().clone();
    // A build with overflow checks in cudarc (a debug build) panics in the multiplication instead.
    let Ok(Ok(lying)) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| stream.alloc_zeros::<f32>((1usize << 62) + 1))) else {
        eprintln!("lying_length: cudarc refused the allocation itself (overflow checks, or fixed upstream): nothing to check");
        return;
    };
    let e = a.download(&lying).unwrap_err();
    assert!(matches!(e, Error::TooLarge { op: "download", .. }), "{e:?}");
}

/// A handle and device buffers can be shared across threads (the docs of `Gpu` say so).
#[test]
fn handles_and_buffers_are_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Gpu>();
    shareable::<DeviceVec<f32>>();
    shareable::<DeviceCsrPattern<u32>>();
}
