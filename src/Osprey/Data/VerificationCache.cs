using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Osprey.Data;

/// <summary>Size and modification time of a file; (-1, 0) when the file is missing.</summary>
public readonly record struct FileStamp(long Size, long MtimeTicks)
{
    /// <summary>Stamp of a path.</summary>
    public static FileStamp Of(string path)
    {
        var info = new FileInfo(path);
        return info.Exists ? new FileStamp(info.Length, info.LastWriteTimeUtc.Ticks) : new FileStamp(-1, 0);
    }
}

/// <summary>The cached check of one image and its label file.</summary>
public sealed record CachedImageCheck(
    string ImagePath,
    FileStamp Image,
    FileStamp Label,
    ImageStatus Status,
    int Width,
    int Height,
    string? ImageProblem,
    int[] Classes,
    float[] Boxes,
    int DroppedRows,
    int DuplicateRows,
    string[] LabelMessages);

/// <summary>Our own verification cache file (JSON). Foreign <c>*.cache</c> files are never read.</summary>
public sealed record VerificationCacheFile(int Version, int ClassCount, List<CachedImageCheck> Entries)
{
    /// <summary>Format version; a different one is ignored.</summary>
    public const int CurrentVersion = 1;

    /// <summary>File suffix of our cache files.</summary>
    public const string Suffix = ".osprey-labels.json";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    /// <summary>Reads a cache file, or null when missing, unreadable or of another version / class count.</summary>
    public static VerificationCacheFile? TryRead(string path, int classCount)
    {
        try
        {
            if (!File.Exists(path)) return null;
            using var stream = File.OpenRead(path);
            var file = JsonSerializer.Deserialize<VerificationCacheFile>(stream, Json);
            return file is { Version: CurrentVersion } && file.ClassCount == classCount ? file : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or NotSupportedException)
        {
            return null;
        }
    }

    /// <summary>Writes atomically; false when the folder is not writable.</summary>
    public bool TryWrite(string path)
    {
        try
        {
            Osprey.IO.AtomicFile.Write(path, s => JsonSerializer.Serialize(s, this, Json));
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Where our cache for a split goes: beside its labels folder (<c>labels/train2017.osprey-labels.json</c>)
    /// when that folder is writable, else in <paramref name="cacheDirectory"/>/datasets under a hash of the path.</summary>
    public static string PathFor(string firstImagePath, string? cacheDirectory)
    {
        var labelDir = Path.GetDirectoryName(ImageFiles.LabelPathFor(firstImagePath))!;
        var parent = Path.GetDirectoryName(labelDir);
        var beside = labelDir + Suffix;
        if (parent is not null && OspreyCacheDirectory.IsWritable(parent)) return beside;
        var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(beside)))[..16].ToLowerInvariant();
        return Path.Combine(cacheDirectory ?? OspreyCacheDirectory.Root, "datasets", $"{Path.GetFileName(labelDir)}-{hash}{Suffix}");
    }
}
