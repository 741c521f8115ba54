//! Safe wrappers over the `gemm` crate's sgemm for the three products a dense layer needs.
//!
//! All matrices are row-major. Transposes are expressed through strides, so no product
//! copies its operands; the slice-length asserts are what make the `unsafe` calls sound.
//!
//! Why `gemm` and not `matrixmultiply`: at the shapes RL networks have, `gemm` is as fast on
//! the large products and 3–9× faster on the thin ones (a batch of one observation when
//! acting, a 2-wide Q-value output), because it does not pack small operands
//! (`cargo bench -p tars-agents --bench sgemm`).
//!
//! Products of at least [`parallel_min_macs`] multiply-adds are split over rayon's pool
//! (DDPG's 400-300 networks at batch 256; with AVX2 kernels, DQN's 256-wide ones too). `gemm`
//! splits the output into blocks and each block sums over `k` in the same order, so the
//! result is bit-identical whatever the number of threads (tested below): parallelism never
//! changes training.

use gemm::Parallelism;

/// Whether `gemm` runs its AVX-512 kernels on this CPU: its `x86-v4` feature picks them at run
/// time when these extensions are present (what `pulp`'s `V4` level checks), AVX2/FMA ones
/// otherwise.
pub(crate) fn avx512_kernels() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512cd")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Multiply-adds from which a product runs on rayon's pool, measured per kernel width
/// (docs/benchmarks.md). With AVX2 kernels a 64×256×256 product (4.2 M, DQN's hidden layer)
/// gains from the second thread (DQN CartPole 30.7 s on one, 22.6–26.1 s on two). With AVX-512
/// kernels it takes ~50 µs and the hand-off cost more than it saved (9.7 s split, 7.1 s not),
/// while DDPG's 256×400×300 (31 M) still gains (26.4 s against 31.3 s on one thread).
pub(crate) fn parallel_min_macs() -> usize {
    static MIN: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MIN.get_or_init(|| if avx512_kernels() { 24 << 20 } else { 2 << 20 })
}

/// Multiply-adds from which a product on the [`pair`](super::pair) is split into two column
/// halves, one per core: DQN's 64×256×256 hidden-layer products (4.2 M, ~50 µs) and its
/// target network's 256-row batches, not the thin input and output layers.
const PAIR_MIN_MACS: usize = 1 << 20;

/// A row-major matrix view: `rows × cols` at `ptr` with the given strides, checked against
/// the slice it comes from.
#[derive(Clone, Copy)]
struct View {
    ptr: *const f32,
    row_stride: isize,
    col_stride: isize,
}

/// `dst[m, n] = lhs[m, k] · rhs[k, n] (+ dst if accumulate)`, `dst` row-major with
/// `dst_row_stride`.
#[derive(Clone, Copy)]
struct Product {
    m: usize,
    k: usize,
    n: usize,
    lhs: View,
    rhs: View,
    dst: *mut f32,
    dst_row_stride: isize,
    accumulate: bool,
}

// SAFETY: a product is addresses and strides; what may be read and written through them is
// the contract of `Product::compute`, whose callers keep the slices borrowed for the whole
// call, and the two halves of a split product write disjoint columns of `dst`.
unsafe impl Send for Product {}

impl Product {
    /// Computes the product, on rayon's pool when it is large.
    ///
    /// # Safety
    /// Every `row * row_stride + col * col_stride` of the three views, over their shapes,
    /// must be in bounds of live, non-overlapping allocations (`dst` unique).
    unsafe fn compute(self) {
        let macs = self.m * self.k * self.n;
        let on_pair = super::pair::active() && self.n >= 32;
        if on_pair && (PAIR_MIN_MACS..parallel_min_macs()).contains(&macs) {
            // Output columns `[0, half)` and `[half, n)`, `half` a multiple of the kernels' 16.
            let half = (self.n / 2).next_multiple_of(16);
            // SAFETY: both halves are within the caller's shapes, `half < n`.
            let (lo, hi) = unsafe { (self.columns(0, half), self.columns(half, self.n)) };
            // SAFETY: forwarded from the caller; the halves write disjoint columns.
            rayon::join(
                move || unsafe { lo.run(Parallelism::None) },
                move || unsafe { hi.run(Parallelism::None) },
            );
            return;
        }
        let parallelism = if macs >= parallel_min_macs() && rayon::current_num_threads() > 1 {
            Parallelism::Rayon(0)
        } else {
            Parallelism::None
        };
        // SAFETY: forwarded from the caller.
        unsafe { self.run(parallelism) }
    }

    /// The product restricted to output columns `start..end`.
    ///
    /// # Safety
    /// `start <= end <= n`.
    unsafe fn columns(self, start: usize, end: usize) -> Product {
        Product {
            n: end - start,
            // SAFETY: column `start <= n` of `rhs` and `dst` is in bounds or one past them.
            rhs: View {
                ptr: unsafe { self.rhs.ptr.offset(self.rhs.col_stride * start as isize) },
                ..self.rhs
            },
            dst: unsafe { self.dst.add(start) },
            ..self
        }
    }

    /// One `gemm::gemm` call, which computes `dst = alpha·dst + beta·lhs·rhs`, reading `dst`
    /// only when asked; strides are given column first.
    ///
    /// # Safety
    /// As for [`Product::compute`].
    unsafe fn run(self, parallelism: Parallelism) {
        let Product { lhs, rhs, .. } = self;
        // SAFETY: forwarded from the caller.
        unsafe {
            gemm::gemm(
                self.m,
                self.n,
                self.k,
                self.dst,
                1,
                self.dst_row_stride,
                self.accumulate,
                lhs.ptr,
                lhs.col_stride,
                lhs.row_stride,
                rhs.ptr,
                rhs.col_stride,
                rhs.row_stride,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    }
}

/// `y[m, n] = x[m, k] · w[n, k]ᵀ` — a layer's forward product with `torch.nn.Linear`'s
/// `[out, in]` weight layout. `y` need not be initialised.
pub(crate) fn x_wt(x: &[f32], w: &[f32], y: &mut [f32], m: usize, k: usize, n: usize) {
    assert!(x.len() >= m * k && w.len() >= n * k && y.len() >= m * n);
    let product = Product {
        m,
        k,
        n,
        lhs: View {
            ptr: x.as_ptr(),
            row_stride: k as isize,
            col_stride: 1,
        },
        // `w` is `[n, k]` row-major, so `wᵀ` is `[k, n]` with strides (1, k).
        rhs: View {
            ptr: w.as_ptr(),
            row_stride: 1,
            col_stride: k as isize,
        },
        dst: y.as_mut_ptr(),
        dst_row_stride: n as isize,
        accumulate: false,
    };
    // SAFETY: the assert above keeps every strided access in bounds, and `y` is a unique
    // borrow that cannot overlap the shared `x` and `w`.
    unsafe { product.compute() }
}

/// `dx[m, k] = dy[m, n] · w[n, k]` — the gradient with respect to a layer's input.
/// `dx` need not be initialised.
pub(crate) fn dy_w(dy: &[f32], w: &[f32], dx: &mut [f32], m: usize, n: usize, k: usize) {
    assert!(dy.len() >= m * n && w.len() >= n * k && dx.len() >= m * k);
    let product = Product {
        m,
        k: n,
        n: k,
        lhs: View {
            ptr: dy.as_ptr(),
            row_stride: n as isize,
            col_stride: 1,
        },
        rhs: View {
            ptr: w.as_ptr(),
            row_stride: k as isize,
            col_stride: 1,
        },
        dst: dx.as_mut_ptr(),
        dst_row_stride: k as isize,
        accumulate: false,
    };
    // SAFETY: as in `x_wt`.
    unsafe { product.compute() }
}

/// `dw[n, k] += dy[m, n]ᵀ · x[m, k]` — accumulates a layer's weight gradient over the batch.
pub(crate) fn accumulate_dyt_x(
    dy: &[f32],
    x: &[f32],
    dw: &mut [f32],
    m: usize,
    n: usize,
    k: usize,
) {
    assert!(dy.len() >= m * n && x.len() >= m * k && dw.len() >= n * k);
    let product = Product {
        m: n,
        k: m,
        n: k,
        // `dyᵀ` is `[n, m]` with strides (1, n).
        lhs: View {
            ptr: dy.as_ptr(),
            row_stride: 1,
            col_stride: n as isize,
        },
        rhs: View {
            ptr: x.as_ptr(),
            row_stride: k as isize,
            col_stride: 1,
        },
        dst: dw.as_mut_ptr(),
        dst_row_stride: k as isize,
        accumulate: true,
    };
    // SAFETY: as in `x_wt`.
    unsafe { product.compute() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        c
    }

    fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        let mut t = vec![0.0; a.len()];
        for i in 0..rows {
            for j in 0..cols {
                t[j * rows + i] = a[i * cols + j];
            }
        }
        t
    }

    #[test]
    fn products_match_the_naive_definitions() {
        let (m, k, n) = (5, 3, 4);
        let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.71).cos()).collect();
        let dy: Vec<f32> = (0..m * n).map(|i| (i as f32 * 0.13).sin()).collect();

        let mut y = vec![f32::NAN; m * n];
        x_wt(&x, &w, &mut y, m, k, n);
        let expected = naive(&x, &transpose(&w, n, k), m, k, n);
        y.iter()
            .zip(&expected)
            .for_each(|(a, b)| assert!((a - b).abs() < 1e-5));

        let mut dx = vec![f32::NAN; m * k];
        dy_w(&dy, &w, &mut dx, m, n, k);
        let expected = naive(&dy, &w, m, n, k);
        dx.iter()
            .zip(&expected)
            .for_each(|(a, b)| assert!((a - b).abs() < 1e-5));

        let mut dw = vec![1.0; n * k];
        accumulate_dyt_x(&dy, &x, &mut dw, m, n, k);
        let expected = naive(&transpose(&dy, m, n), &x, n, m, k);
        dw.iter()
            .zip(&expected)
            .for_each(|(a, b)| assert!((a - (b + 1.0)).abs() < 1e-5));
    }

    /// The bits of a layer's three products (`y`, `dx`, `dw`) on fixed inputs of one shape.
    fn product_bits(m: usize, k: usize, n: usize) -> [Vec<u32>; 3] {
        let x: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.71).cos()).collect();
        let dy: Vec<f32> = (0..m * n).map(|i| (i as f32 * 0.13).sin()).collect();
        let (mut y, mut dx, mut dw) = (vec![0.0; m * n], vec![0.0; m * k], vec![0.5; n * k]);
        x_wt(&x, &w, &mut y, m, k, n);
        dy_w(&dy, &w, &mut dx, m, n, k);
        accumulate_dyt_x(&dy, &x, &mut dw, m, n, k);
        [y, dx, dw].map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>())
    }

    #[test]
    fn large_products_give_the_same_bits_on_one_thread_and_on_two() {
        // DDPG's second layer at batch 256: 256 × 400 × 300, above either threshold.
        let (m, k, n) = (256, 400, 300);
        assert!(m * k * n >= parallel_min_macs());
        let on_threads = |n_threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n_threads)
                .build()
                .unwrap();
            pool.install(|| {
                assert_eq!(rayon::current_num_threads(), n_threads);
                product_bits(m, k, n)
            })
        };
        assert!(on_threads(1) == on_threads(2));
    }

    #[test]
    fn products_split_on_the_pair_give_the_same_bits() {
        // DQN's hidden layer at batch 64, its target network's 256-row batches, and a width
        // that splits unevenly (64 + 36 columns).
        for (m, k, n) in [(64, 256, 256), (256, 256, 256), (64, 256, 100)] {
            assert!(m * k * n >= PAIR_MIN_MACS);
            let one_core = product_bits(m, k, n);
            if let Some(two_cores) = super::super::pair::tests::on_pair(|| product_bits(m, k, n)) {
                assert!(one_core == two_cores, "{m}×{k}×{n} differs on the pair");
            }
        }
    }
}
