using Osprey.Evaluation;
using Osprey.Plotting;

namespace Osprey.Tests.Plotting;

public class PrecisionRecallPlotTests
{
    [Fact]
    public void MeanCurveIsBlueWhereTheHandWorkedPrecisionIs()
    {
        // The hand-worked case of PrecisionRecallCurveTests: precision 2/3 for recall in (0.5, 1).
        var evaluator = new CocoEvaluator();
        evaluator.Update(1,
            new[] { new Detection(0, 0, 10, 10, 0.9, 0), new Detection(50, 50, 60, 60, 0.8, 0), new Detection(20, 20, 30, 30, 0.7, 0) },
            new[] { new GroundTruth(0, 0, 10, 10, 0), new GroundTruth(20, 20, 30, 30, 0) });
        using var folder = new PlotTestFolder();
        RunPlots.PrecisionRecallCurve(evaluator, new[] { "thing" }, folder["PR_curve.png"]);
        Assert.Equal(new[] { "PR_curve.png" }, folder.FileNames());
        using var image = PlotTestFolder.ReadPng(folder["PR_curve.png"]);
        Assert.Equal((PrecisionRecallPlot.Width, PrecisionRecallPlot.Height), (image.Width, image.Height));

        // Axes: x 90..749 for recall 0..1, y 719..60 for precision 0..1. At recall 0.75: x = 90 + 0.75·659 ≈ 584.
        int x = 584, yAt = (int)Math.Round(719 - 2.0 / 3 * 659), yNot = (int)Math.Round(719 - 0.3 * 659);
        var on = PlotTestFolder.Pixel(image, x, yAt);
        Assert.True(on.B > 200 && on.G < 80 && on.R < 80, $"expected blue at precision 2/3, got {on}");
        Assert.Equal((255, 255, 255), PlotTestFolder.Pixel(image, x + 5, yNot)); // nothing at precision 0.3 (off the grid lines)
    }
}
