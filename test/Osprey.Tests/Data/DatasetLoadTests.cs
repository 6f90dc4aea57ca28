using Osprey.Data;
using OpenCvSharp;

namespace Osprey.Tests.Data;

public class DatasetLoadTests
{
    private static DatasetLoadOptions TempCache() => new(CacheDirectory: DataTestFiles.NewTempDir());

    [Fact]
    public void Coco8LoadsFourAndFour()
    {
        var yaml = Path.Combine(DataTestFiles.SharedData, "coco8", "coco8.yaml");
        var before = DataTestFiles.Fingerprint(Path.GetDirectoryName(yaml)!);
        var options = TempCache();
        var train = DetectionDataset.Load(yaml, DatasetSplit.Train, options);
        var val = DetectionDataset.Load(yaml, DatasetSplit.Val, options);
        Assert.Equal(80, train.Config.ClassCount);
        Assert.Equal(4, train.Summary.Images);
        Assert.Equal(4, val.Summary.Images);
        Assert.Equal(0, train.Summary.CorruptImages + train.Summary.SkippedImages);
        Assert.NotNull(train.Summary.CachePath);
        Assert.StartsWith(options.CacheDirectory!, train.Summary.CachePath); // read-only dataset: our cache goes elsewhere
        Assert.Equal(before, DataTestFiles.Fingerprint(Path.GetDirectoryName(yaml)!));
    }

    [Fact]
    public void Coco128LoadsWithTheReadmeCounts()
    {
        var yaml = Path.Combine(DataTestFiles.SharedData, "coco128", "coco128.yaml");
        var options = TempCache();
        var train = DetectionDataset.Load(yaml, DatasetSplit.Train, options).Summary;
        Assert.Equal(128, train.Images);
        Assert.Equal(2, train.Backgrounds);
        Assert.Equal(929, train.Boxes);
        Assert.Equal(2, train.OrphanLabels);
        Assert.Contains(train.Messages, m => m.Contains("000000000656.txt") && m.Contains("without an image"));
        Assert.Contains(train.Messages, m => m.Contains("000000000659.txt") && m.Contains("without an image"));
        var val = DetectionDataset.Load(yaml, DatasetSplit.Val, options).Summary;
        Assert.Equal(128, val.Images);
        Assert.Equal(898, val.Boxes);
        Assert.Equal(0, val.OrphanLabels);
    }

    [Fact]
    public void BadInputsAreSkippedNamedAndNeverTouched()
    {
        var root = DataTestFiles.NewTempDir();
        DataTestFiles.PlantImage(root, "train", "good", 64, 48, (0, 0.5f, 0.5f, 0.25f, 0.25f));
        DataTestFiles.PlantImage(root, "train", "rows", 64, 64, (1, 0.5f, 0.5f, 0.25f, 0.25f));
        var rowsLabel = Path.Combine(root, "labels", "train", "rows.txt");
        File.AppendAllLines(rowsLabel,
        [
            "0 0.5 0.5 0.2",            // wrong column count
            "0 1.5 0.5 0.2 0.2",        // outside [0, 1]
            "0 -0.1 0.5 0.2 0.2",       // negative
            "0 1.005 0.5 0.2 0.2",      // within 1 %: clipped, kept
            "9 0.5 0.5 0.2 0.2",        // class >= nc
            "2 0.3 0.3 0.1 0.1",
            "2 0.3 0.3 0.1 0.1",        // duplicate
            "x 0.3 0.3 0.1 0.1",        // not a number
        ]);
        DataTestFiles.PlantImage(root, "train", "background", 64, 64);
        File.Delete(Path.Combine(root, "labels", "train", "background.txt"));
        DataTestFiles.PlantImage(root, "train", "tiny", 8, 30);
        // a truncated JPEG and a file that is no image at all
        using (var img = new Mat(64, 64, MatType.CV_8UC3, new Scalar(10, 200, 30)))
        {
            Cv2.ImEncode(".jpg", img, out var jpeg);
            File.WriteAllBytes(Path.Combine(root, "images", "train", "truncated.jpg"), jpeg[..(jpeg.Length / 2)]);
        }
        File.WriteAllBytes(Path.Combine(root, "images", "train", "garbage.jpg"), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        File.WriteAllText(Path.Combine(root, "labels", "train", "orphan.txt"), "0 0.5 0.5 0.1 0.1\n");
        File.WriteAllBytes(Path.Combine(root, "labels", "train.cache"), [0x80, 0x04, 0x95, 0xFF, 0x00]); // a foreign pickle
        var yaml = Path.Combine(root, "bad.yaml");
        File.WriteAllText(yaml, "path: .\ntrain: images/train\nval: images/train\nnames: {0: a, 1: b, 2: c}\n");
        var before = DataTestFiles.Fingerprint(root);

        var data = DetectionDataset.Load(yaml, DatasetSplit.Train, TempCache());
        var s = data.Summary;
        Assert.Equal(3, s.Images);                // good, rows, background
        Assert.Equal(1, s.Backgrounds);
        Assert.Equal(2, s.CorruptImages);         // truncated, garbage
        Assert.Equal(1, s.SkippedImages);         // tiny
        Assert.True(5 == s.DroppedRows, string.Join("\n", s.Messages));
        Assert.Equal(1, s.DuplicateRows);
        Assert.Equal(1, s.OrphanLabels);
        Assert.Equal(1 + 3, s.Boxes);             // good 1; rows: planted, clipped, class 2
        foreach (var name in new[] { "truncated.jpg", "garbage.jpg", "tiny.png", "orphan.txt", "rows.txt" })
            Assert.Contains(s.Messages, m => m.Contains(name));
        var rows = data.Images.Single(i => i.ImagePath.EndsWith("rows.png"));
        Assert.Contains(rows.Boxes, v => v == 1f);
        Assert.Equal(before, DataTestFiles.Fingerprint(root));
        Assert.True(File.Exists(s.CachePath)); // writable dataset: our cache beside the labels folder
        Assert.Equal(Path.Combine(root, "labels", "train.osprey-labels.json"), s.CachePath);
    }

    [Fact]
    public void NoUsableImageIsAClearError()
    {
        var root = DataTestFiles.NewTempDir();
        Directory.CreateDirectory(Path.Combine(root, "images", "train"));
        File.WriteAllBytes(Path.Combine(root, "images", "train", "broken.jpg"), [0xFF, 0xD8, 0xFF, 0x00]);
        var yaml = Path.Combine(root, "empty.yaml");
        File.WriteAllText(yaml, "path: .\ntrain: images/train\nval: images/train\nnames: [a]\n");
        var e = Assert.Throws<InvalidDataException>(() => DetectionDataset.Load(yaml, DatasetSplit.Train, TempCache()));
        Assert.Contains("empty", e.Message);
        Assert.Contains("train", e.Message);
        Assert.Contains("broken.jpg", e.Message);
    }

    [Fact]
    public void YamlVariantsResolveTheSameImages()
    {
        var root = DataTestFiles.NewTempDir();
        DataTestFiles.PlantDataset(root, 4);
        File.WriteAllLines(Path.Combine(root, "train.txt"), ["./images/train/img000.png", "./images/train/img001.png"]);
        File.WriteAllLines(Path.Combine(root, "val.txt"), [Path.Combine(root, "images", "val", "v0.png")]);
        Directory.CreateDirectory(Path.Combine(root, "cfg"));
        var variants = new Dictionary<string, (string Yaml, int Train, int Val)>
        {
            ["dot"] = ("path: .\ntrain: images/train\nval: images/val\nnames: [a, b, c]\n", 4, 2),
            ["list"] = ("path: .\ntrain: [images/train, images/val]\nval: [images/val]\nnames:\n  0: a\n  1: b\n  2: c\n", 6, 2),
            ["txt"] = ("path: .\ntrain: train.txt\nval: val.txt\nnames: {0: a, 2: c}\n", 2, 1),
            ["relative"] = ("path: ..\ntrain: images/train\nval: images/val\nnames: [a, b, c]\n", 4, 2),
            ["nopath"] = ("train: images/train\nval: images/val\nnc: 3\n", 4, 2),
        };
        foreach (var (name, (text, trainCount, valCount)) in variants)
        {
            var yaml = name == "relative" ? Path.Combine(root, "cfg", "r.yaml") : Path.Combine(root, $"{name}.yaml");
            File.WriteAllText(yaml, text);
            var config = DatasetYaml.Load(yaml);
            Assert.Equal(3, config.ClassCount);
            Assert.Equal(trainCount, ImageFiles.List(config.Train, name).Count);
            Assert.Equal(valCount, ImageFiles.List(config.Val, name).Count);
        }
        Assert.Equal(["a", "class1", "c"], DatasetYaml.Load(Path.Combine(root, "txt.yaml")).Names);
    }

    [Fact]
    public void OurCacheIsReusedAndInvalidatedByAChange()
    {
        var root = DataTestFiles.NewTempDir();
        var yaml = DataTestFiles.PlantDataset(root, 5);
        var first = DetectionDataset.Load(yaml, DatasetSplit.Train).Summary;
        Assert.Equal(5, first.VerifiedFiles);
        var second = DetectionDataset.Load(yaml, DatasetSplit.Train).Summary;
        Assert.Equal(0, second.VerifiedFiles);
        Assert.Equal(5, second.CachedFiles);
        Assert.Equal(first.Boxes, second.Boxes);

        var label = Path.Combine(root, "labels", "train", "img002.txt");
        File.AppendAllText(label, "0 0.5 0.5 0.1 0.1\n");
        File.SetLastWriteTimeUtc(label, DateTime.UtcNow.AddMinutes(1));
        var third = DetectionDataset.Load(yaml, DatasetSplit.Train).Summary;
        Assert.Equal(1, third.VerifiedFiles);
        Assert.Equal(first.Boxes + 1, third.Boxes);
    }

    [Fact]
    public void ForeignCacheFileIsIgnored()
    {
        var root = DataTestFiles.NewTempDir();
        var yaml = DataTestFiles.PlantDataset(root, 3);
        var foreign = Path.Combine(root, "labels", "train.cache");
        File.WriteAllText(foreign, "{\"Version\":1,\"ClassCount\":3,\"Entries\":[]}");
        var s = DetectionDataset.Load(yaml, DatasetSplit.Train).Summary;
        Assert.Equal(3, s.VerifiedFiles);
        Assert.Equal(3, s.Images);
        Assert.Equal("{\"Version\":1,\"ClassCount\":3,\"Entries\":[]}", File.ReadAllText(foreign));
    }

    [Fact]
    public void FractionTakesTheFirstImagesInSortedOrderWithPythonsRound()
    {
        // Ultralytics' get_img_files: im_files[: round(len(im_files) * fraction)] on the sorted list, before labels are read.
        var yaml = Path.Combine(DataTestFiles.SharedData, "coco128", "coco128.yaml");
        var full = DetectionDataset.Load(yaml, DatasetSplit.Train, TempCache());
        var quarter = DetectionDataset.Load(yaml, DatasetSplit.Train, TempCache() with { Fraction = 0.25 });
        Assert.Equal(full.Images.Take(quarter.Count).Select(i => i.ImagePath), quarter.Images.Select(i => i.ImagePath));
        // coco128 train: 128 image files (2 without labels are backgrounds): round(128 · 0.25) = 32 files
        Assert.Equal(32, quarter.Count);
        Assert.Equal(0, quarter.Summary.OrphanLabels - full.Summary.OrphanLabels); // the other images' labels are no orphans

        var coco8 = Path.Combine(DataTestFiles.SharedData, "coco8", "coco8.yaml");
        Assert.Equal(2, DetectionDataset.Load(coco8, DatasetSplit.Train, TempCache() with { Fraction = 0.625 }).Count); // round(2.5) = 2
        Assert.Equal(4, DetectionDataset.Load(coco8, DatasetSplit.Train, TempCache() with { Fraction = 0.875 }).Count); // round(3.5) = 4
        var none = Assert.Throws<InvalidDataException>(() => DetectionDataset.Load(coco8, DatasetSplit.Train, TempCache() with { Fraction = 0.1 }));
        Assert.Contains("leaves none", none.Message);
        Assert.Throws<ArgumentException>(() => DetectionDataset.Load(coco8, DatasetSplit.Train, TempCache() with { Fraction = 0 }));
    }
}
