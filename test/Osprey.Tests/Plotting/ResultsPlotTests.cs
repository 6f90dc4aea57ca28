using Osprey.Plotting;
using Osprey.Training;

namespace Osprey.Tests.Plotting;

public class ResultsPlotTests
{
    private static void WriteCsv(string path, double map50Epoch3)
    {
        for (int e = 1; e <= 6; e++)
        {
            double f = 1.0 / e;
            ResultsCsv.Append(path, new EpochResult(e, 10 * e, new[] { 1.5 * f + 0.5, 2.0 * f + 0.3, 1.2 * f + 0.8 },
                0.1 * e, 0.08 * e, e == 3 ? map50Epoch3 : 0.05 * e, 0.03 * e, new[] { 1.4 * f + 0.6, 1.9 * f + 0.4, 1.1 * f + 0.9 },
                new[] { 0.01, 0.01, 0.01 }));
        }
    }

    [Fact]
    public void WritesA1600By800PngThatChangesOnlyInTheChangedChart()
    {
        using var folder = new PlotTestFolder();
        WriteCsv(folder["a.csv"], 0.15);
        WriteCsv(folder["b.csv"], 0.45);
        RunPlots.Results(folder["a.csv"], folder["a.png"]);
        RunPlots.Results(folder["b.csv"], folder["b.png"]);
        Assert.Equal(new[] { "a.csv", "a.png", "b.csv", "b.png" }, folder.FileNames()); // no temporary files left

        using var a = PlotTestFolder.ReadPng(folder["a.png"]);
        using var b = PlotTestFolder.ReadPng(folder["b.png"]);
        Assert.Equal((1600, 800), (a.Width, a.Height));

        // metrics/mAP50(B) is chart 8: row 1, column 3 → x 960..1279, y 400..799. Only there may pixels differ.
        int changedInside = 0, changedOutside = 0;
        for (int y = 0; y < 800; y++)
            for (int x = 0; x < 1600; x++)
            {
                if (PlotTestFolder.Pixel(a, x, y) == PlotTestFolder.Pixel(b, x, y)) continue;
                if (x is >= 960 and < 1280 && y >= 400) changedInside++; else changedOutside++;
            }
        Assert.True(changedInside > 200, $"only {changedInside} pixels changed in the mAP50 chart");
        Assert.Equal(0, changedOutside);
    }

    [Fact]
    public void EachChartDrawsItsRawLineInMatplotlibBlue()
    {
        using var folder = new PlotTestFolder();
        WriteCsv(folder["r.csv"], 0.15);
        RunPlots.Results(folder["r.csv"], folder["r.png"]);
        using var image = PlotTestFolder.ReadPng(folder["r.png"]);
        // C0 = #1F77B4 → BGR (180, 119, 31); every one of the 10 cells holds such pixels.
        for (int cell = 0; cell < 10; cell++)
        {
            int x0 = cell % 5 * 320, y0 = cell / 5 * 400, blue = 0;
            for (int y = y0; y < y0 + 400; y++)
                for (int x = x0; x < x0 + 320; x++)
                    if (PlotTestFolder.Pixel(image, x, y) == (180, 119, 31)) blue++;
            Assert.True(blue > 50, $"chart {cell} has {blue} line pixels");
        }
    }

    [Fact]
    public void PlotsTheFirstEpochOfARun()
    {
        // A run's first results.csv has one row (a regression: tick generation once looped without end on it).
        using var folder = new PlotTestFolder();
        ResultsCsv.Append(folder["one.csv"], new EpochResult(1, 0.4, new[] { 3.3238, 5.7666, 4.4176 }, 0, 0, 0, 0,
            new[] { 3.1, 5.2, 4.1 }, new[] { 0.0001, 0.0001, 0.0001 }));
        RunPlots.Results(folder["one.csv"], folder["one.png"]);
        using var png = PlotTestFolder.ReadPng(folder["one.png"]);
        Assert.Equal((1600, 800), (png.Width, png.Height));
    }

    [Theory]
    [InlineData(-0.011, 0.011, new[] { -0.01, 0.0, 0.01 })]       // raw step 0.022/4 = 0.0055 → 0.01
    [InlineData(0.0, 10.0, new[] { 0.0, 2.5, 5.0, 7.5, 10.0 })]
    [InlineData(3.0, 3.0, new[] { 3.0 })]
    public void NiceTicksAreRoundSteps(double min, double max, double[] expected) =>
        Assert.Equal(expected, Axes.NiceTicks(min, max, 5).Select(t => Math.Round(t, 10)));
}
