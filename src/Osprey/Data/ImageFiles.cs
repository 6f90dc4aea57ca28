namespace Osprey.Data;

/// <summary>Finds the image files of a split and their label files (the Ultralytics rules).</summary>
public static class ImageFiles
{
    /// <summary>Image extensions Ultralytics accepts (lower case, no dot).</summary>
    public static readonly IReadOnlySet<string> Extensions =
        new HashSet<string>(["bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm", "heic"], StringComparer.OrdinalIgnoreCase);

    /// <summary>True when the path has an image extension.</summary>
    public static bool IsImage(string path) => Extensions.Contains(Path.GetExtension(path).TrimStart('.'));

    /// <summary>The label file of an image: last <c>/images/</c> becomes <c>/labels/</c>, extension becomes <c>.txt</c>.</summary>
    public static string LabelPathFor(string imagePath)
    {
        var sep = Path.DirectorySeparatorChar;
        var images = $"{sep}images{sep}";
        var at = imagePath.LastIndexOf(images, StringComparison.Ordinal);
        var swapped = at < 0 ? imagePath : string.Concat(imagePath.AsSpan(0, at), $"{sep}labels{sep}", imagePath.AsSpan(at + images.Length));
        return Path.ChangeExtension(swapped, ".txt");
    }

    /// <summary>Lists the images of some sources (folders searched recursively, txt lists, single images), sorted, distinct.
    /// Missing sources raise <see cref="DirectoryNotFoundException"/>.</summary>
    public static List<string> List(IEnumerable<string> sources, string what)
    {
        var found = new List<string>();
        foreach (var source in sources)
        {
            if (Directory.Exists(source))
            {
                found.AddRange(Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories).Where(IsImage));
            }
            else if (File.Exists(source) && string.Equals(Path.GetExtension(source), ".txt", StringComparison.OrdinalIgnoreCase))
            {
                var parent = Path.GetDirectoryName(source)!;
                foreach (var raw in File.ReadLines(source))
                {
                    var line = raw.Trim();
                    if (line.Length == 0) continue;
                    var full = Path.IsPathRooted(line) ? line : Path.GetFullPath(Path.Combine(parent, line));
                    if (IsImage(full)) found.Add(Path.GetFullPath(full));
                }
            }
            else if (File.Exists(source) && IsImage(source))
            {
                found.Add(source);
            }
            else
            {
                throw new DirectoryNotFoundException($"{what}: image source '{source}' does not exist.");
            }
        }
        return found.Select(Path.GetFullPath).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>Label files in the label folders of folder sources whose image is not among <paramref name="images"/>.</summary>
    public static List<string> OrphanLabels(IEnumerable<string> sources, IReadOnlyCollection<string> images)
    {
        var expected = new HashSet<string>(images.Select(LabelPathFor), StringComparer.Ordinal);
        var orphans = new List<string>();
        foreach (var source in sources.Where(Directory.Exists))
        {
            var labelDir = LabelPathFor(Path.Combine(source, "x.jpg"));
            labelDir = Path.GetDirectoryName(labelDir)!;
            if (labelDir == Path.GetFullPath(source) || !Directory.Exists(labelDir)) continue;
            orphans.AddRange(Directory.EnumerateFiles(labelDir, "*.txt", SearchOption.AllDirectories)
                .Select(Path.GetFullPath).Where(l => !expected.Contains(l)));
        }
        return orphans.Order(StringComparer.Ordinal).ToList();
    }
}
