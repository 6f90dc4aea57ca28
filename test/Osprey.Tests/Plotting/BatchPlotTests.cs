using Osprey.Data;
using Osprey.Plotting;
using static TorchSharp.torch;

namespace Osprey.Tests.Plotting;

public class BatchPlotTests
{
    private static readonly string[] Names = { "zero", "one", "two", "three", "four", "five" };

    /// <summary>Two 64 × 64 images: image 0 plain RGB (200, 50, 10), image 1 grey 114. Labels: image 0 a class-3 box
    /// centred (0.5, 0.5) of size 0.5 → pixels 16..48; image 1 a class-0 box centre (0.25, 0.5) size (0.25, 0.5) → x 8..24, y 16..48.</summary>
    private static Batch TwoImages()
    {
        var images = zeros(2, 3, 64, 64, ScalarType.Byte);
        images[0, 0].fill_(200); images[0, 1].fill_(50); images[0, 2].fill_(10);
        images[1].fill_(114);
        var infos = new[]
        {
            new ImageInfo("/data/images/first.jpg", 0, 64, 64, 1, 1, 0, 0),
            new ImageInfo("/data/images/second.jpg", 1, 64, 64, 1, 1, 0, 0),
        };
        return new Batch(images, tensor(new long[] { 0, 1 }), tensor(new float[] { 3, 0 }),
            tensor(new float[] { 0.5f, 0.5f, 0.5f, 0.5f, 0.25f, 0.5f, 0.25f, 0.5f }, new long[] { 2, 4 }), infos, 0, 0);
    }

    // Ultralytics palette, BGR: class 0 #042AFF, class 1 #0BDBEB, class 3 #00DFB7, class 5 #FF6FDD.
    private static readonly (int, int, int) Class0 = (255, 42, 4), Class1 = (235, 219, 11), Class3 = (183, 223, 0);

    [Fact]
    public void LabelsAreDrawnInTheirClassColourWhereTheBoxesAre()
    {
        using var batch = TwoImages();
        using var folder = new PlotTestFolder();
        RunPlots.Batch(batch, Names, folder["train_batch0.png"]);
        Assert.Equal(new[] { "train_batch0.png" }, folder.FileNames());
        using var image = PlotTestFolder.ReadPng(folder["train_batch0.png"]);
        // 2 images → 2 × 2 tiles of 64 px, filled column by column: image 0 at (0, 0), image 1 at (0, 64).
        Assert.Equal((128, 128), (image.Width, image.Height));

        Assert.Equal(Class3, PlotTestFolder.Pixel(image, 16, 40));        // left edge of image 0's box
        Assert.Equal(Class3, PlotTestFolder.Pixel(image, 47, 40));        // right edge (x2 = 48, line width 2)
        Assert.Equal((10, 50, 200), PlotTestFolder.Pixel(image, 32, 40)); // inside: the image, RGB → BGR
        Assert.Equal((10, 50, 200), PlotTestFolder.Pixel(image, 8, 40));  // where image 1's box would be: untouched

        Assert.Equal(Class0, PlotTestFolder.Pixel(image, 8, 64 + 40));    // image 1's box, left edge
        Assert.Equal((114, 114, 114), PlotTestFolder.Pixel(image, 16, 64 + 40)); // inside it
        Assert.Equal((114, 114, 114), PlotTestFolder.Pixel(image, 47, 64 + 40)); // where image 0's box is: untouched
        Assert.Equal((255, 255, 255), PlotTestFolder.Pixel(image, 100, 100));    // empty tiles stay white
    }

    [Fact]
    public void PredictionsBelowTheConfidenceThresholdAreNotDrawn()
    {
        using var batch = TwoImages();
        using var folder = new PlotTestFolder();
        using var first = tensor(new float[] { 8, 8, 24, 40, 0.9f, 1, 40, 24, 56, 56, 0.2f, 5 }, new long[] { 2, 6 });
        using var second = zeros(0, 6);
        RunPlots.Batch(batch, Names, folder["val_batch0_pred.png"], new[] { first, second });
        using var image = PlotTestFolder.ReadPng(folder["val_batch0_pred.png"]);
        Assert.Equal(Class1, PlotTestFolder.Pixel(image, 8, 32));           // kept prediction (conf 0.9), left edge
        Assert.Equal((10, 50, 200), PlotTestFolder.Pixel(image, 40, 40));   // dropped prediction (conf 0.2): not drawn
        Assert.Equal((10, 50, 200), PlotTestFolder.Pixel(image, 16, 44));   // labels are not drawn with predictions
        Assert.Equal((114, 114, 114), PlotTestFolder.Pixel(image, 8, 64 + 40));
    }

    [Fact]
    public void LargeBatchesAreCappedAt16TilesAnd1920Pixels()
    {
        Assert.Equal((4, 480, 480, 0.75), BatchPlot.Layout(32, 640, 640));
        Assert.Equal((3, 640, 512, 0.64), BatchPlot.Layout(5, 800, 1000));
        Assert.Equal((1, 64, 48, 1.0), BatchPlot.Layout(1, 48, 64));
    }
}
