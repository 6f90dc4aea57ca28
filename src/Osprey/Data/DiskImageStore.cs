using System.IO.MemoryMappedFiles;
using System.Security.Cryptography;
using System.Text;
using OpenCvSharp;

namespace Osprey.Data;

/// <summary>
/// <c>cache=disk</c>: all decoded, resized images in one file in the cache folder, memory-mapped read-only, so every process
/// of a machine (all ranks) shares one copy through the page cache. Built once (atomically) and keyed by the image paths,
/// their sizes and mtimes, imgsz and the interpolation.
/// </summary>
public sealed class DiskImageStore : IImageStore
{
    private const long Magic = 0x315345474D49534F; // "OSIMGES1"
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private readonly nint _base;
    private readonly (long Offset, int H, int W, int H0, int W0)[] _entries;

    /// <summary>The cache file.</summary>
    public string FilePath { get; }

    /// <summary>True when this instance built the file (false: it was already there).</summary>
    public bool Built { get; }

    /// <summary>Opens the shared cache file for these images, building it first when missing.</summary>
    public DiskImageStore(IReadOnlyList<LabeledImage> images, int imageSize, bool augment, int threads, string? cacheDirectory = null)
    {
        FilePath = Path.Combine(cacheDirectory ?? OspreyCacheDirectory.Root, "images", $"{Key(images, imageSize, augment)}.osprey-images.bin");
        if (!File.Exists(FilePath))
        {
            Build(images, imageSize, augment, threads, FilePath);
            Built = true;
        }
        _file = MemoryMappedFile.CreateFromFile(FilePath, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        AcquirePointer(out _base);
        var count = _view.ReadInt32(8);
        if (_view.ReadInt64(0) != Magic || count != images.Count) throw new InvalidDataException($"Image cache {FilePath} is not valid.");
        _entries = new (long, int, int, int, int)[count];
        for (var i = 0; i < count; i++)
        {
            var at = 16 + i * 24L;
            _entries[i] = (_view.ReadInt64(at), _view.ReadInt32(at + 8), _view.ReadInt32(at + 12), _view.ReadInt32(at + 16), _view.ReadInt32(at + 20));
        }
    }

    private void AcquirePointer(out nint pointer)
    {
        var handle = _view.SafeMemoryMappedViewHandle;
        var success = false;
        handle.DangerousAddRef(ref success);
        pointer = handle.DangerousGetHandle() + (nint)_view.PointerOffset;
    }

    /// <inheritdoc/>
    public int Count => _entries.Length;

    /// <inheritdoc/>
    public LoadedImage Load(int index)
    {
        var (offset, h, w, h0, w0) = _entries[index];
        return new LoadedImage(Mat.FromPixelData(h, w, MatType.CV_8UC3, _base + (nint)offset), h0, w0);
    }

    private static string Key(IReadOnlyList<LabeledImage> images, int imageSize, bool augment)
    {
        var text = new StringBuilder().Append(imageSize).Append('|').Append(augment ? "linear" : "area");
        foreach (var image in images)
        {
            var stamp = FileStamp.Of(image.ImagePath);
            text.Append('|').Append(image.ImagePath).Append(':').Append(stamp.Size).Append(':').Append(stamp.MtimeTicks);
        }
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..24].ToLowerInvariant();
    }

    private static void Build(IReadOnlyList<LabeledImage> images, int imageSize, bool augment, int threads, string path)
    {
        Osprey.IO.AtomicFile.Write(path, stream =>
        {
            var header = 16 + images.Count * 24L;
            var table = new (long Offset, int H, int W, int H0, int W0)[images.Count];
            stream.SetLength(header);
            stream.Position = header;
            const int chunk = 64;
            for (var start = 0; start < images.Count; start += chunk)
            {
                var n = Math.Min(chunk, images.Count - start);
                var decoded = new (byte[] Pixels, int H, int W, int H0, int W0)[n];
                Parallel.For(0, n, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) }, k =>
                {
                    using var loaded = ImageResize.LoadFile(images[start + k].ImagePath, imageSize, augment);
                    var bytes = new byte[loaded.Image.Height * loaded.Image.Width * 3];
                    RamImageStore.CopyPixels(loaded.Image, bytes);
                    decoded[k] = (bytes, loaded.Image.Height, loaded.Image.Width, loaded.OriginalHeight, loaded.OriginalWidth);
                });
                for (var k = 0; k < n; k++)
                {
                    // 64-byte aligned rows start for SIMD-friendly reads
                    stream.Position = (stream.Position + 63) / 64 * 64;
                    table[start + k] = (stream.Position, decoded[k].H, decoded[k].W, decoded[k].H0, decoded[k].W0);
                    stream.Write(decoded[k].Pixels);
                }
            }
            using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            stream.Position = 0;
            writer.Write(Magic);
            writer.Write(images.Count);
            writer.Write(0);
            foreach (var e in table)
            {
                writer.Write(e.Offset);
                writer.Write(e.H);
                writer.Write(e.W);
                writer.Write(e.H0);
                writer.Write(e.W0);
            }
        });
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        _view.SafeMemoryMappedViewHandle.DangerousRelease();
        _view.Dispose();
        _file.Dispose();
    }
}
