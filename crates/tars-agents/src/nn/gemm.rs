//! Safe wrappers over `matrixmultiply::sgemm` for the three products a dense layer needs.
//!
//! All matrices are row-major. Transposes are expressed through strides, so no product
//! copies its operands; the slice-length asserts are what make the `unsafe` calls sound.

/// `y[m, n] = x[m, k] · w[n, k]ᵀ` — a layer's forward product with `torch.nn.Linear`'s
/// `[out, in]` weight layout. `y` need not be initialised.
pub(crate) fn x_wt(x: &[f32], w: &[f32], y: &mut [f32], m: usize, k: usize, n: usize) {
    assert!(x.len() >= m * k && w.len() >= n * k && y.len() >= m * n);
    // SAFETY: the asserts above keep every strided access in bounds, and `y` is a unique borrow.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            x.as_ptr(),
            k as isize,
            1,
            w.as_ptr(),
            1,
            k as isize,
            0.0,
            y.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `dx[m, k] = dy[m, n] · w[n, k]` — the gradient with respect to a layer's input.
/// `dx` need not be initialised.
pub(crate) fn dy_w(dy: &[f32], w: &[f32], dx: &mut [f32], m: usize, n: usize, k: usize) {
    assert!(dy.len() >= m * n && w.len() >= n * k && dx.len() >= m * k);
    // SAFETY: as in `x_wt`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            n,
            k,
            1.0,
            dy.as_ptr(),
            n as isize,
            1,
            w.as_ptr(),
            k as isize,
            1,
            0.0,
            dx.as_mut_ptr(),
            k as isize,
            1,
        );
    }
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
    // SAFETY: as in `x_wt`.
    unsafe {
        matrixmultiply::sgemm(
            n,
            m,
            k,
            1.0,
            dy.as_ptr(),
            1,
            n as isize,
            x.as_ptr(),
            k as isize,
            1,
            1.0,
            dw.as_mut_ptr(),
            k as isize,
            1,
        );
    }
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
}
