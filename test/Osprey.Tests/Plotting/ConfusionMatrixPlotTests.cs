using Osprey.Evaluation;
using Osprey.Plotting;
using Matrix = Osprey.Evaluation.ConfusionMatrix;

namespace Osprey.Tests.Plotting;

public class ConfusionMatrixPlotTests
{
    /// <summary>nc = 2: three class-0 gts found as class 0, one class-1 gt found as class 0, one class-1 gt missed.
    /// Counts [pred, actual]: [0,0] = 3, [0,1] = 1, [2,1] = 1 (background row); [1,1] = 0.</summary>
    private static Matrix Matrix()
    {
        var matrix = new Matrix(2);
        for (int i = 0; i < 3; i++)
            matrix.Process(new[] { new Detection(0, 0, 10, 10, 0.9, 0) }, new[] { new GroundTruth(0, 0, 10, 10, 0) });
        matrix.Process(new[] { new Detection(0, 0, 10, 10, 0.9, 0) }, new[] { new GroundTruth(0, 0, 10, 10, 1) });
        matrix.Process(Array.Empty<Detection>(), new[] { new GroundTruth(0, 0, 10, 10, 1) });
        return matrix;
    }

    [Fact]
    public void ColumnsAreNormalisedAndSmallValuesBlank()
    {
        var values = ConfusionMatrixPlot.Values(Matrix(), normalize: true);
        Assert.Equal(1.0, values[0, 0], 6);   // 3 / 3
        Assert.Equal(0.5, values[0, 1], 6);   // 1 / 2
        Assert.Equal(0.5, values[2, 1], 6);
        Assert.True(double.IsNaN(values[1, 1]));
        Assert.Equal(3.0, ConfusionMatrixPlot.Values(Matrix(), normalize: false)[0, 0]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void KnownCountIsDarkerThanAnEmptyCell(bool normalize)
    {
        using var folder = new PlotTestFolder();
        string name = normalize ? "confusion_matrix_normalized.png" : "confusion_matrix.png";
        var names = new[] { "cat", "dog" };
        RunPlots.ConfusionMatrix(Matrix(), names, folder[name], normalize);
        Assert.Equal(new[] { name }, folder.FileNames());
        using var image = PlotTestFolder.ReadPng(folder[name]);
        Assert.Equal((ConfusionMatrixPlot.Width, ConfusionMatrixPlot.Height), (image.Width, image.Height));

        var (origin, cell) = ConfusionMatrixPlot.Layout(2, names);
        // A point inside a cell, away from its printed value: an eighth of the cell from its top-left corner.
        (int B, int G, int R) At(int predicted, int actual) =>
            PlotTestFolder.Pixel(image, origin.X + actual * cell + cell / 8, origin.Y + predicted * cell + cell / 8);
        var full = At(0, 0);       // the largest value: the darkest blue
        var half = At(0, 1);
        var empty = At(1, 1);
        Assert.Equal((255, 255, 255), empty);
        Assert.True(full.B > full.R + 50, $"cell [0,0] is not blue: {full}");
        Assert.True(full.G < half.G && half.G < empty.G, $"darkness not ordered: {full} {half} {empty}");
    }
}
