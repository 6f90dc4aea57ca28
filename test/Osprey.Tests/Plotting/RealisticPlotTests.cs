using Osprey.Data;
using Osprey.Evaluation;
using Osprey.Plotting;
using Osprey.Training;
using static TorchSharp.torch;
using Matrix = Osprey.Evaluation.ConfusionMatrix;

namespace Osprey.Tests.Plotting;

/// <summary>Each plot on run-sized inputs (many epochs, classes beyond the legend / annotation limits, a full batch):
/// valid PNGs of the documented sizes, and no temporary files left.</summary>
public class RealisticPlotTests
{
    [Fact]
    public void ThirtyEpochsOfResults()
    {
        using var folder = new PlotTestFolder();
        var random = new Random(1);
        for (int e = 1; e <= 30; e++)
        {
            double f = Math.Exp(-e / 10.0);
            double n() => 0.03 * random.NextDouble();
            ResultsCsv.Append(folder["results.csv"], new EpochResult(e, 12.5 * e, new[] { 1.2 * f + 0.6 + n(), 2.5 * f + 0.5 + n(), 1.1 * f + 0.9 + n() },
                0.8 - 0.6 * f + n(), 0.7 - 0.6 * f + n(), 0.75 - 0.7 * f + n(), 0.5 - 0.48 * f + n(),
                new[] { 1.1 * f + 0.7 + n(), 2.0 * f + 0.6 + n(), 1.0 * f + 1.0 + n() }, new[] { 0.01 * f, 0.01 * f, 0.01 * f }));
        }
        RunPlots.Results(folder["results.csv"], folder["results.png"]);
        using var image = PlotTestFolder.ReadPng(folder["results.png"]);
        Assert.Equal((1600, 800), (image.Width, image.Height));
        Assert.Equal(new[] { "results.csv", "results.png" }, folder.FileNames());
    }

    [Theory]
    [InlineData(3)]
    [InlineData(25)]
    public void PrecisionRecallOfManyClasses(int classes)
    {
        var random = new Random(2);
        var evaluator = new CocoEvaluator();
        for (int image = 0; image < 40; image++)
        {
            var gts = new List<GroundTruth>();
            var dets = new List<Detection>();
            for (int k = 0; k < 4; k++)
            {
                int cls = random.Next(classes);
                double x = random.Next(0, 500), y = random.Next(0, 500);
                gts.Add(new GroundTruth(x, y, x + 50, y + 50, cls));
                double shift = random.NextDouble() * 30;
                dets.Add(new Detection(x + shift, y, x + 50 + shift, y + 50, random.NextDouble(), random.NextDouble() < 0.8 ? cls : random.Next(classes)));
            }
            evaluator.Update(image, dets, gts);
        }
        var names = Enumerable.Range(0, classes).Select(c => $"class_{c}").ToArray();
        using var folder = new PlotTestFolder();
        string file = $"PR_curve_{classes}.png";
        RunPlots.PrecisionRecallCurve(evaluator, names, folder[file]);
        using var png = PlotTestFolder.ReadPng(folder[file]);
        Assert.Equal((1200, 800), (png.Width, png.Height));
        Assert.Equal(new[] { file }, folder.FileNames());
    }

    [Theory]
    [InlineData(5)]
    [InlineData(40)]
    public void ConfusionMatrixOfManyClasses(int classes)
    {
        var random = new Random(3);
        var matrix = new Matrix(classes);
        for (int i = 0; i < 400; i++)
        {
            int cls = random.Next(classes);
            int predicted = random.NextDouble() < 0.7 ? cls : random.Next(classes);
            var gt = new[] { new GroundTruth(0, 0, 10, 10, cls) };
            matrix.Process(random.NextDouble() < 0.9 ? new[] { new Detection(0, 0, 10, 10, 0.9, predicted) } : Array.Empty<Detection>(), gt);
            if (random.NextDouble() < 0.1) matrix.Process(new[] { new Detection(0, 0, 10, 10, 0.9, cls) }, Array.Empty<GroundTruth>());
        }
        var names = Enumerable.Range(0, classes).Select(c => c == 1 ? "a_rather_long_class_name_indeed" : $"class_{c}").ToArray();
        using var folder = new PlotTestFolder();
        RunPlots.ConfusionMatrix(matrix, names, folder[$"confusion_matrix_normalized_{classes}.png"]);
        RunPlots.ConfusionMatrix(matrix, names, folder[$"confusion_matrix_{classes}.png"], normalize: false);
        foreach (var file in folder.FileNames())
        {
            using var png = PlotTestFolder.ReadPng(folder[file]);
            Assert.Equal((1200, 900), (png.Width, png.Height));
        }
        Assert.Equal(2, folder.FileNames().Length);
    }

    [Fact]
    public void BatchOfNineImages()
    {
        var random = new Random(4);
        using var images = randint(0, 255, new long[] { 9, 3, 320, 320 }, ScalarType.Byte);
        var index = new List<long>();
        var classes = new List<float>();
        var boxes = new List<float>();
        for (int i = 0; i < 9; i++)
            for (int k = 0; k < 3; k++)
            {
                index.Add(i);
                classes.Add(random.Next(6));
                boxes.AddRange(new[] { 0.2f + 0.6f * (float)random.NextDouble(), 0.2f + 0.6f * (float)random.NextDouble(), 0.3f, 0.2f });
            }
        var infos = Enumerable.Range(0, 9).Select(i => new ImageInfo($"/data/images/img_{i:000}.jpg", i, 320, 320, 1, 1, 0, 0)).ToArray();
        using var batch = new Batch(images.clone(), tensor(index.ToArray()), tensor(classes.ToArray()), tensor(boxes.ToArray(), new long[] { index.Count, 4 }), infos, 0, 0);
        var names = new[] { "person", "car", "bicycle", "dog", "cat", "bus" };
        using var folder = new PlotTestFolder();
        RunPlots.Batch(batch, names, folder["train_batch9.png"]);
        using var png = PlotTestFolder.ReadPng(folder["train_batch9.png"]);
        Assert.Equal((960, 960), (png.Width, png.Height));
    }
}
