//! Sixteen float32 lanes and the operations the kernels need, on each level (`levels.rs`):
//! sixteen scalars, two AVX2 registers or one AVX-512 register. Every operation rounds as
//! its scalar definition does, so a kernel written once over [`Lanes`] gives the same bits
//! on every level.

/// Sixteen float32 lanes and the operations a dot product needs.
pub(crate) trait Lanes: Copy {
    /// # Safety
    /// The level this type stands for is supported (as for every method here).
    unsafe fn zero() -> Self;
    /// # Safety
    /// `from` points at 16 readable float32 values.
    unsafe fn load(from: *const f32) -> Self;
    /// # Safety
    /// `from` points at `count` (< 16) readable float32 values; the other lanes are 0.
    unsafe fn load_partial(from: *const f32, count: usize) -> Self;
    /// # Safety
    /// `to` points at 16 writable float32 values.
    unsafe fn store(self, to: *mut f32);
    /// # Safety
    /// `to` points at `count` (< 16) writable float32 values, the first lanes' place.
    unsafe fn store_partial(self, to: *mut f32, count: usize);
    /// `value` in every lane.
    unsafe fn splat(value: f32) -> Self;
    /// `self - other` in every lane.
    unsafe fn minus(self, other: Self) -> Self;
    /// `self + other` in every lane.
    unsafe fn plus(self, other: Self) -> Self;
    /// `self + a * b` in every lane, rounded once.
    unsafe fn fused(self, a: Self, b: Self) -> Self;
    /// The lanes added in the pairwise order of the module's definition.
    unsafe fn sum(self) -> f32;
    /// A hint that the line holding `at` is about to be written (no effect on any value).
    #[inline(always)]
    unsafe fn prefetch_for_write(_at: *const f32) {}
}

#[derive(Clone, Copy)]
pub(crate) struct Scalar([f32; 16]);

impl Lanes for Scalar {
    #[inline(always)]
    unsafe fn zero() -> Self {
        Scalar([0.0; 16])
    }
    #[inline(always)]
    unsafe fn load(from: *const f32) -> Self {
        Scalar(std::array::from_fn(|l| *from.add(l)))
    }
    #[inline(always)]
    unsafe fn load_partial(from: *const f32, count: usize) -> Self {
        Scalar(std::array::from_fn(|l| {
            if l < count {
                *from.add(l)
            } else {
                0.0
            }
        }))
    }
    #[inline(always)]
    unsafe fn store(self, to: *mut f32) {
        std::ptr::copy_nonoverlapping(self.0.as_ptr(), to, 16);
    }
    #[inline(always)]
    unsafe fn store_partial(self, to: *mut f32, count: usize) {
        std::ptr::copy_nonoverlapping(self.0.as_ptr(), to, count);
    }
    #[inline(always)]
    unsafe fn splat(value: f32) -> Self {
        Scalar([value; 16])
    }
    #[inline(always)]
    unsafe fn minus(self, other: Self) -> Self {
        Scalar(std::array::from_fn(|l| self.0[l] - other.0[l]))
    }
    #[inline(always)]
    unsafe fn plus(self, other: Self) -> Self {
        Scalar(std::array::from_fn(|l| self.0[l] + other.0[l]))
    }
    #[inline(always)]
    unsafe fn fused(self, a: Self, b: Self) -> Self {
        Scalar(std::array::from_fn(|l| a.0[l].mul_add(b.0[l], self.0[l])))
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        let mut lanes = self.0;
        for width in [8, 4, 2, 1] {
            for l in 0..width {
                lanes[l] += lanes[l + width];
            }
        }
        lanes[0]
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use super::Lanes;
    use std::arch::x86_64::*;

    /// The last three steps of the pairwise sum, from eight lanes.
    #[inline(always)]
    unsafe fn sum8(eight: __m256) -> f32 {
        let four = _mm_add_ps(
            _mm256_castps256_ps128(eight),
            _mm256_extractf128_ps::<1>(eight),
        );
        let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
        _mm_cvtss_f32(_mm_add_ss(two, _mm_shuffle_ps::<0x55>(two, two)))
    }

    #[derive(Clone, Copy)]
    pub struct Avx2(__m256, __m256);

    impl Lanes for Avx2 {
        #[inline(always)]
        unsafe fn zero() -> Self {
            Avx2(_mm256_setzero_ps(), _mm256_setzero_ps())
        }
        #[inline(always)]
        unsafe fn load(from: *const f32) -> Self {
            Avx2(_mm256_loadu_ps(from), _mm256_loadu_ps(from.add(8)))
        }
        #[inline(always)]
        unsafe fn load_partial(from: *const f32, count: usize) -> Self {
            let mut padded = [0f32; 16];
            std::ptr::copy_nonoverlapping(from, padded.as_mut_ptr(), count);
            Self::load(padded.as_ptr())
        }
        #[inline(always)]
        unsafe fn store(self, to: *mut f32) {
            _mm256_storeu_ps(to, self.0);
            _mm256_storeu_ps(to.add(8), self.1);
        }
        #[inline(always)]
        unsafe fn store_partial(self, to: *mut f32, count: usize) {
            let mut lanes = [0f32; 16];
            self.store(lanes.as_mut_ptr());
            std::ptr::copy_nonoverlapping(lanes.as_ptr(), to, count);
        }
        #[inline(always)]
        unsafe fn splat(value: f32) -> Self {
            Avx2(_mm256_set1_ps(value), _mm256_set1_ps(value))
        }
        #[inline(always)]
        unsafe fn minus(self, other: Self) -> Self {
            Avx2(
                _mm256_sub_ps(self.0, other.0),
                _mm256_sub_ps(self.1, other.1),
            )
        }
        #[inline(always)]
        unsafe fn plus(self, other: Self) -> Self {
            Avx2(
                _mm256_add_ps(self.0, other.0),
                _mm256_add_ps(self.1, other.1),
            )
        }
        #[inline(always)]
        unsafe fn fused(self, a: Self, b: Self) -> Self {
            Avx2(
                _mm256_fmadd_ps(a.0, b.0, self.0),
                _mm256_fmadd_ps(a.1, b.1, self.1),
            )
        }
        #[inline(always)]
        unsafe fn sum(self) -> f32 {
            sum8(_mm256_add_ps(self.0, self.1))
        }
        #[inline(always)]
        unsafe fn prefetch_for_write(at: *const f32) {
            _mm_prefetch::<_MM_HINT_ET0>(at as *const i8);
        }
    }

    #[derive(Clone, Copy)]
    pub struct Avx512(__m512);

    impl Lanes for Avx512 {
        #[inline(always)]
        unsafe fn zero() -> Self {
            Avx512(_mm512_setzero_ps())
        }
        #[inline(always)]
        unsafe fn load(from: *const f32) -> Self {
            Avx512(_mm512_loadu_ps(from))
        }
        #[inline(always)]
        unsafe fn load_partial(from: *const f32, count: usize) -> Self {
            Avx512(_mm512_maskz_loadu_ps(
                ((1u32 << count) - 1) as __mmask16,
                from,
            ))
        }
        #[inline(always)]
        unsafe fn store(self, to: *mut f32) {
            _mm512_storeu_ps(to, self.0);
        }
        #[inline(always)]
        unsafe fn store_partial(self, to: *mut f32, count: usize) {
            _mm512_mask_storeu_ps(to, ((1u32 << count) - 1) as __mmask16, self.0);
        }
        #[inline(always)]
        unsafe fn splat(value: f32) -> Self {
            Avx512(_mm512_set1_ps(value))
        }
        #[inline(always)]
        unsafe fn minus(self, other: Self) -> Self {
            Avx512(_mm512_sub_ps(self.0, other.0))
        }
        #[inline(always)]
        unsafe fn plus(self, other: Self) -> Self {
            Avx512(_mm512_add_ps(self.0, other.0))
        }
        #[inline(always)]
        unsafe fn fused(self, a: Self, b: Self) -> Self {
            Avx512(_mm512_fmadd_ps(a.0, b.0, self.0))
        }
        #[inline(always)]
        unsafe fn sum(self) -> f32 {
            let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self.0)));
            sum8(_mm256_add_ps(_mm512_castps512_ps256(self.0), high))
        }
        #[inline(always)]
        unsafe fn prefetch_for_write(at: *const f32) {
            _mm_prefetch::<_MM_HINT_ET0>(at as *const i8);
        }
    }
}
