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
public sealed class LoadedImage(Mat image, int originalHeight, int originalWidth) : IDisposable
{
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
