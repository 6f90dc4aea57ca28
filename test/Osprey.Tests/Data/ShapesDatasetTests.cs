using System.Security.Cryptography;
using Osprey.Data;

namespace Osprey.Tests.Data;

public class ShapesDatasetTests
{
    [Fact]
    public void ShapesIsGeneratedOnceDeterministicallyAndLoads()
    {
        var cache = DataTestFiles.NewTempDir();
        var options = new ShapesOptions(ImageSize: 96, TrainImages: 24, ValImages: 8, Seed: 4);
        var yaml = ShapesDataset.EnsureGenerated(options, cache);
        var stamp = File.GetLastWriteTimeUtc(yaml);
        Assert.Equal(yaml, ShapesDataset.EnsureGenerated(options, cache));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(yaml));

        var other = DataTestFiles.NewTempDir();
        ShapesDataset.Generate(other, options);
        var root = Path.GetDirectoryName(yaml)!;
        foreach (var file in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Where(f => !f.EndsWith(".json")))
        {
            var twin = Path.Combine(other, Path.GetRelativePath(root, file));
            Assert.Equal(SHA256.HashData(File.ReadAllBytes(file)), SHA256.HashData(File.ReadAllBytes(twin)));
        }

        var train = DetectionDataset.Load(yaml, DatasetSplit.Train);
        var val = DetectionDataset.Load(yaml, DatasetSplit.Val);
        Assert.Equal(24, train.Count);
        Assert.Equal(8, val.Count);
        Assert.Equal(ShapesDataset.Names, train.Names);
        Assert.Equal(0, train.Summary.DroppedRows);
        Assert.True(train.Summary.Boxes >= 24);
        foreach (var image in train.Images)
            for (var k = 0; k < image.BoxCount; k++)
                Assert.InRange(Math.Max(image.Boxes[4 * k + 2], image.Boxes[4 * k + 3]), 0.1f, 0.62f);
    }

    [Fact]
    public void DataShapesResolvesThroughTheCatalog()
    {
        var cache = DataTestFiles.NewTempDir();
        var previous = Environment.GetEnvironmentVariable("OSPREY_CACHE");
        var config = DatasetCatalog.Resolve("shapes", cache);
        Assert.Equal("shapes", config.Name);
        Assert.Equal(5, config.ClassCount);
        Assert.StartsWith(cache, config.YamlPath);
        Assert.Equal(previous, Environment.GetEnvironmentVariable("OSPREY_CACHE"));
        Assert.Throws<FileNotFoundException>(() => DatasetCatalog.Resolve("no-such.yaml"));
    }
}
