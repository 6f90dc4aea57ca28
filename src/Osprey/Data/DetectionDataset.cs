namespace Osprey.Data;

/// <summary>Options of <see cref="DetectionDataset.Load(DatasetConfig, DatasetSplit, DatasetLoadOptions?)"/>.</summary>
/// <param name="CacheDirectory">Fallback folder for our caches when the dataset is read-only (default <see cref="OspreyCacheDirectory.Root"/>).</param>
/// <param name="Threads">Threads that check images (default: processor count).</param>
/// <param name="CacheDirectory">Where the verification cache goes (null: beside the labels, as Ultralytics).</param>
/// <param name="Threads">Verification threads (0: one per core).</param>
/// <param name="Fraction">Use only the first round(n · fraction) images in sorted path order (Ultralytics' <c>fraction</c>,
/// applied to the image list before the labels are read; Python's round, half to even).</param>
public sealed record DatasetLoadOptions(string? CacheDirectory = null, int Threads = 0, double Fraction = 1.0);

/// <summary>One split of a detection dataset: verified images with their boxes, and what loading found.</summary>
public sealed class DetectionDataset
{
    /// <summary>The dataset description.</summary>
    public DatasetConfig Config { get; }

    /// <summary>The split.</summary>
    public DatasetSplit Split { get; }

    /// <summary>Usable images in sorted path order.</summary>
    public IReadOnlyList<LabeledImage> Images { get; }

    /// <summary>What loading found.</summary>
    public DatasetSummary Summary { get; }

    /// <summary>Number of usable images.</summary>
    public int Count => Images.Count;

    /// <summary>Class names.</summary>
    public IReadOnlyList<string> Names => Config.Names;

    private DetectionDataset(DatasetConfig config, DatasetSplit split, IReadOnlyList<LabeledImage> images, DatasetSummary summary)
    {
        Config = config;
        Split = split;
        Images = images;
        Summary = summary;
    }

    /// <summary>Loads a split from a <c>data=</c> string (<c>shapes</c> or a YAML path).</summary>
    public static DetectionDataset Load(string data, DatasetSplit split, DatasetLoadOptions? options = null) =>
        Load(DatasetCatalog.Resolve(data, options?.CacheDirectory), split, options);

    /// <summary>Checks every image and label of a split once (or takes the check from our cache when sizes and mtimes
    /// match), never modifying a dataset file. Throws <see cref="InvalidDataException"/> when no image is usable.</summary>
    public static DetectionDataset Load(DatasetConfig config, DatasetSplit split, DatasetLoadOptions? options = null)
    {
        options ??= new DatasetLoadOptions();
        var what = $"Dataset '{config.Name}' split '{split.ToString().ToLowerInvariant()}'";
        var sources = config.Sources(split);
        if (sources.Count == 0) throw new InvalidDataException($"{what} has no image source in {config.YamlPath}.");
        var allPaths = ImageFiles.List(sources, what);
        if (allPaths.Count == 0) throw new InvalidDataException($"{what} has no images in {string.Join(", ", sources)}.");
        if (!(options.Fraction > 0 && options.Fraction <= 1))
            throw new ArgumentException($"fraction={options.Fraction.ToString(System.Globalization.CultureInfo.InvariantCulture)}: must be in (0, 1]");
        var imagePaths = options.Fraction < 1
            ? allPaths.Take((int)Math.Round(allPaths.Count * options.Fraction, MidpointRounding.ToEven)).ToList()
            : allPaths;
        if (imagePaths.Count == 0)
            throw new InvalidDataException($"{what}: fraction={options.Fraction.ToString(System.Globalization.CultureInfo.InvariantCulture)} of {allPaths.Count} images leaves none.");

        var cachePath = VerificationCacheFile.PathFor(imagePaths[0], options.CacheDirectory);
        var previous = VerificationCacheFile.TryRead(cachePath, config.ClassCount);
        var previousByPath = previous?.Entries.ToDictionary(e => e.ImagePath, StringComparer.Ordinal) ?? [];

        var checks = new CachedImageCheck[imagePaths.Count];
        var verified = 0;
        var threads = options.Threads > 0 ? options.Threads : Environment.ProcessorCount;
        Parallel.For(0, imagePaths.Count, new ParallelOptions { MaxDegreeOfParallelism = threads }, i =>
        {
            var imagePath = imagePaths[i];
            var labelPath = ImageFiles.LabelPathFor(imagePath);
            var imageStamp = FileStamp.Of(imagePath);
            var labelStamp = FileStamp.Of(labelPath);
            if (previousByPath.TryGetValue(imagePath, out var cached) && cached.Image == imageStamp && cached.Label == labelStamp)
            {
                checks[i] = cached;
                return;
            }
            Interlocked.Increment(ref verified);
            checks[i] = CheckOne(imagePath, labelPath, imageStamp, labelStamp, config.ClassCount);
        });

        var cacheWritten = verified == 0 && previous is not null;
        if (verified > 0 || previous is null || previous.Entries.Count != checks.Length)
            cacheWritten = new VerificationCacheFile(VerificationCacheFile.CurrentVersion, config.ClassCount, [.. checks]).TryWrite(cachePath);

        var images = new List<LabeledImage>(checks.Length);
        var messages = new List<string>();
        int backgrounds = 0, boxes = 0, skipped = 0, corrupt = 0, dropped = 0, duplicates = 0;
        foreach (var c in checks)
        {
            messages.AddRange(c.LabelMessages);
            if (c.Status != ImageStatus.Ok)
            {
                if (c.Status == ImageStatus.Corrupt) corrupt++; else skipped++;
                messages.Add($"{c.ImagePath}: image skipped: {c.ImageProblem}");
                continue;
            }
            dropped += c.DroppedRows;
            duplicates += c.DuplicateRows;
            images.Add(new LabeledImage(c.ImagePath, c.Width, c.Height, c.Classes, c.Boxes));
            boxes += c.Classes.Length;
            if (c.Classes.Length == 0) backgrounds++;
        }
        var orphans = ImageFiles.OrphanLabels(sources, allPaths);
        messages.AddRange(orphans.Select(o => $"{o}: label file without an image"));

        var summary = new DatasetSummary(config.Name, split, images.Count, backgrounds, boxes, skipped, corrupt, dropped, duplicates,
            orphans.Count, verified, checks.Length - verified, cacheWritten ? cachePath : null, messages);
        if (images.Count == 0)
            throw new InvalidDataException($"{what} has no usable images ({checks.Length} found, {corrupt} corrupt, {skipped} skipped):"
                + Environment.NewLine + string.Join(Environment.NewLine, messages.Take(20)));
        return new DetectionDataset(config, split, images, summary);
    }

    private static CachedImageCheck CheckOne(string imagePath, string labelPath, FileStamp imageStamp, FileStamp labelStamp, int classCount)
    {
        var image = ImageCheck.Check(imagePath);
        int[] classes = [];
        float[] boxes = [];
        int dropped = 0, duplicates = 0;
        string[] labelMessages = [];
        if (labelStamp.Size >= 0)
        {
            try
            {
                var content = LabelFile.Parse(File.ReadAllText(labelPath), classCount, labelPath);
                (classes, boxes, dropped, duplicates, labelMessages) =
                    (content.Classes, content.Boxes, content.DroppedRows, content.DuplicateRows, content.Messages.ToArray());
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                labelMessages = [$"{labelPath}: cannot be read ({e.Message}); image used as background"];
            }
        }
        return new CachedImageCheck(imagePath, imageStamp, labelStamp, image.Status, image.Width, image.Height, image.Problem,
            classes, boxes, dropped, duplicates, labelMessages);
    }
}
