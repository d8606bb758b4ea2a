import torch
from PIL import Image

from ganforge.plots import image_grid, loss_plot, samples_png


def test_image_grid_maps_minus_one_to_black_and_one_to_white_with_grey_gaps():
    x = torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1, 1)  # three 1 x 1 images
    grid = image_grid(x, nrow=2, pad=1)
    # 2 per row -> 2 rows; size (2 * (1 + 1) + 1) squared; unused cell stays grey (128)
    assert grid.shape == (5, 5, 1)
    assert (grid[1, 1, 0], grid[1, 3, 0], grid[3, 1, 0], grid[3, 3, 0]) == (0, 128, 255, 128)
    assert grid[0, :, 0].tolist() == [128] * 5


def test_image_grid_keeps_rgb_and_clamps():
    x = torch.full((1, 3, 2, 2), 5.0)
    x[0, 1] = -7.0
    grid = image_grid(x, pad=0)
    assert grid.shape == (2, 2, 3)
    assert grid[0, 0].tolist() == [255, 0, 255]


def test_samples_png_sizes(tmp_path):
    samples_png(torch.zeros(4, 1, 28, 28), tmp_path / "g.png", scale=1)
    assert Image.open(tmp_path / "g.png").size == (2 + 2 * 30, 2 + 2 * 30)
    samples_png(torch.randn(50, 2), tmp_path / "s.png")
    samples_png(torch.randn(50, 1), tmp_path / "h.png")
    assert Image.open(tmp_path / "s.png").size == (600, 400)
    assert Image.open(tmp_path / "h.png").size == (600, 400)


def test_loss_plot_writes_a_png(tmp_path):
    loss_plot([1, 2, 3], {"L_D": [1.0, 0.5, 0.7], "L_G": [2.0, 1.0, 0.9]}, tmp_path / "l.png", "t")
    assert Image.open(tmp_path / "l.png").format == "PNG"


def test_loss_plot_marks_the_points_of_a_short_run(tmp_path, monkeypatch):
    """Under 20 logged points each carries a marker (a lone point has no line to show it);
    from 20 on, lines alone."""
    from ganforge import plots

    figures = []
    real = plots.png_bytes
    monkeypatch.setattr(plots, "png_bytes", lambda fig: figures.append(fig) or real(fig))
    loss_plot([5], {"L_D": [1.3], "L_G": [0.7]}, tmp_path / "one.png", "t")
    steps = list(range(20))
    loss_plot(steps, {"L_D": [1.0] * 20}, tmp_path / "many.png", "t")
    short, long = (f.axes[0].lines for f in figures)
    assert [line.get_marker() for line in short] == ["o", "o"]
    assert [line.get_marker() for line in long] == ["None"]
