"""playground.kernels: the classic kernels' values and sums, in every size."""

import pytest
import torch

from cnn_explorer.playground import (
    KERNEL_SIZES,
    KERNELS,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_classic_kernels() -> None:
    assert KERNELS["sobel_x"].kernel(3).tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert KERNELS["sharpen"].kernel(3).tolist() == [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]
    assert KERNELS["emboss"].kernel(3).tolist() == [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]
    assert KERNELS["laplacian"].kernel(3).tolist() == [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    gaussian = torch.tensor([1, 4, 6, 4, 1], dtype=torch.float32)
    assert torch.equal(KERNELS["gaussian"].kernel(5), torch.outer(gaussian, gaussian) / 256)
    # Wikipedia's 5×5 unsharp masking: −1/256 · Gaussian-like table with −476 in the middle
    unsharp = -torch.outer(gaussian, gaussian)
    unsharp[2, 2] = 476
    assert torch.allclose(KERNELS["sharpen"].kernel(5), unsharp / 256)
    for size in KERNEL_SIZES:
        assert torch.equal(KERNELS["sobel_y"].kernel(size), KERNELS["sobel_x"].kernel(size).T)


@pytest.mark.parametrize("size", KERNEL_SIZES)
def test_kernel_sums_say_what_a_kernel_keeps(size: int) -> None:
    sums = {key: float(preset.kernel(size).sum()) for key, preset in KERNELS.items()}
    for key in ("identity", "box_blur", "gaussian", "sharpen", "emboss"):
        assert sums[key] == pytest.approx(1.0, abs=1e-6), key  # brightness kept
    for key in ("sobel_x", "sobel_y", "laplacian"):
        assert sums[key] == pytest.approx(0.0, abs=1e-6), key  # flat areas become zero


def test_an_unknown_kernel_size_is_refused() -> None:
    with pytest.raises(ValueError, match=r"Sobel x comes in 3×3, 5×5; got 7×7"):
        KERNELS["sobel_x"].kernel(7)
