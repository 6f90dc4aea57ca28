using OpenCvSharp;

namespace Osprey.Data;

/// <summary>How decoded images are kept between epochs (Ultralytics <c>cache=</c>).</summary>
public enum ImageCacheMode
{
    /// <summary>Decode from the file every time.</summary>
    None,
    /// <summary>Decoded, resized images in this process's memory.</summary>
    Ram,
    /// <summary>Decoded, resized images in one memory-mapped file in the cache folder, shared by all processes of a machine.</summary>
    Disk,
}

/// <summary>An image as <c>load_image</c> returns it: BGR, long side resized to imgsz. <see cref="Image"/> may view shared
/// read-only memory: never write into it.</summary>
/// <param name="owner">What holds <paramref name="image"/>'s pixels alive while this view exists (a cached array), or null.</param>
public sealed class LoadedImage(Mat image, int originalHeight, int originalWidth, object? owner = null) : IDisposable
{
    /// <summary>Keeps a cache entry's pixels alive after its eviction while this view is in use.</summary>
    internal object? Owner { get; } = owner;

    /// <summary>The resized BGR image (read-only).</summary>
    public Mat Image { get; } = image;

    /// <summary>Height of the file's image.</summary>
    public int OriginalHeight { get; } = originalHeight;

    /// <summary>Width of the file's image.</summary>
    public int OriginalWidth { get; } = originalWidth;

    /// <inheritdoc/>
    public void Dispose() => Image.Dispose();
}

/// <summary>Source of resized images by dataset index.</summary>
public interface IImageStore : IDisposable
{
    /// <summary>Number of images.</summary>
    int Count { get; }

    /// <summary>Loads image <paramref name="index"/>; thread-safe.</summary>
    LoadedImage Load(int index);
}

/// <summary>Ultralytics <c>load_image</c>: decode, then resize so the long side is imgsz.</summary>
public static class ImageResize
{
    /// <summary>Target size of an h×w image for imgsz (Ultralytics: ceil, capped at imgsz).</summary>
    public static (int Height, int Width) TargetSize(int height, int width, int imageSize)
    {
        var r = (double)imageSize / Math.Max(height, width);
        if (r == 1) return (height, width);
        return (Math.Max(1, Math.Min((int)Math.Ceiling(height * r), imageSize)), Math.Max(1, Math.Min((int)Math.Ceiling(width * r), imageSize)));
    }

    /// <summary>Decodes and resizes a file. Linear interpolation when augmenting or upscaling, area when shrinking for validation.</summary>
    public static LoadedImage LoadFile(string path, int imageSize, bool augment)
    {
        var decoded = ImageDecoder.Decode(path);
        var (h0, w0) = (decoded.Height, decoded.Width);
        var (h, w) = TargetSize(h0, w0, imageSize);
        if (h == h0 && w == w0) return new LoadedImage(decoded, h0, w0);
        var resized = new Mat();
        var r = (double)imageSize / Math.Max(h0, w0);
        Cv2.Resize(decoded, resized, new Size(w, h), 0, 0, augment || r > 1 ? InterpolationFlags.Linear : InterpolationFlags.Area);
        decoded.Dispose();
        return new LoadedImage(resized, h0, w0);
    }
}

/// <summary>Decodes from the files every time.</summary>
public sealed class FileImageStore(IReadOnlyList<LabeledImage> images, int imageSize, bool augment) : IImageStore
{
    /// <inheritdoc/>
    public int Count => images.Count;

    /// <inheritdoc/>
    public LoadedImage Load(int index) => ImageResize.LoadFile(images[index].ImagePath, imageSize, augment);

    /// <inheritdoc/>
    public void Dispose() { }
}

/// <summary>
/// <c>cache=false</c> while training: the most recently used decoded images (about as many as Ultralytics' <c>buffer</c>
/// keeps: the partner window plus the samples in flight), least recently used out first, so the mosaic partners drawn from
/// recent positions (<see cref="SamplePipeline.PartnerWindow"/>) are rarely decoded twice: about one decode per sample, the
/// sample's own image, as in Ultralytics. A dataset no larger than that stays decoded. What comes out never depends on what
/// is cached: a hit returns the same pixels a decode would. An entry is the decoder's own <see cref="Mat"/> (no copy); a
/// load returns a header sharing its pixels through OpenCV's reference count, so an evicted image stays valid until the
/// last sample using it disposes its view.
/// </summary>
public sealed class RecentImageStore : IImageStore
{
    private readonly IImageStore _inner;
    private readonly int _capacity;
    private readonly Dictionary<int, LinkedListNode<Entry>> _map = new();
    private readonly LinkedList<Entry> _order = new();
    private readonly object _lock = new();

    private sealed record Entry(int Index, Mat Image, int H0, int W0, object? Owner);

    /// <summary>Decodes with <paramref name="inner"/> and keeps up to <paramref name="capacity"/> images.</summary>
    public RecentImageStore(IImageStore inner, int capacity)
    {
        _inner = inner;
        _capacity = Math.Max(1, capacity);
    }

    /// <summary>Images decoded so far (misses).</summary>
    public long Decoded { get; private set; }

    /// <summary>Loads served from the cache.</summary>
    public long Hits { get; private set; }

    /// <inheritdoc/>
    public int Count => _inner.Count;

    /// <inheritdoc/>
    public LoadedImage Load(int index)
    {
        lock (_lock)
        {
            if (_map.TryGetValue(index, out var node))
            {
                _order.Remove(node);
                _order.AddFirst(node);
                Hits++;
                return View(node.Value);
            }
        }
        var loaded = _inner.Load(index); // its Mat becomes the entry's (disposed on eviction), so `loaded` is not disposed
        var entry = new Entry(index, loaded.Image, loaded.OriginalHeight, loaded.OriginalWidth, loaded.Owner);
        lock (_lock)
        {
            Decoded++;
            if (_map.TryGetValue(index, out var known)) // another worker decoded it meanwhile: keep the first, same pixels
            {
                var view = View(known.Value);
                entry.Image.Dispose();
                return view;
            }
            _map[index] = _order.AddFirst(entry);
            while (_map.Count > _capacity)
            {
                var last = _order.Last!;
                _order.RemoveLast();
                _map.Remove(last.Value.Index);
                last.Value.Image.Dispose(); // views still in use keep the pixels (reference count)
            }
            return View(entry);
        }
    }

    // under _lock: the entry's Mat is not disposed while its header is copied
    private static LoadedImage View(Entry e) => new(new Mat(e.Image, new Rect(0, 0, e.Image.Width, e.Image.Height)), e.H0, e.W0, e.Owner);

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var entry in _order) entry.Image.Dispose();
            _order.Clear();
            _map.Clear();
        }
        _inner.Dispose();
    }
}
