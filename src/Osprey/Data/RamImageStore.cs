using System.Runtime.InteropServices;
using OpenCvSharp;

namespace Osprey.Data;

/// <summary><c>cache=ram</c>: every image decoded and resized once into pinned memory of this process.</summary>
public sealed class RamImageStore : IImageStore
{
    private readonly byte[][] _pixels;
    private readonly (int H, int W, int H0, int W0)[] _shapes;

    /// <summary>Decodes all images on <paramref name="threads"/> threads.</summary>
    public RamImageStore(IReadOnlyList<LabeledImage> images, int imageSize, bool augment, int threads)
    {
        _pixels = new byte[images.Count][];
        _shapes = new (int, int, int, int)[images.Count];
        Parallel.For(0, images.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) }, i =>
        {
            using var loaded = ImageResize.LoadFile(images[i].ImagePath, imageSize, augment);
            var mat = loaded.Image;
            var bytes = GC.AllocateUninitializedArray<byte>(mat.Height * mat.Width * 3, pinned: true);
            CopyPixels(mat, bytes);
            _pixels[i] = bytes;
            _shapes[i] = (mat.Height, mat.Width, loaded.OriginalHeight, loaded.OriginalWidth);
        });
    }

    /// <summary>Bytes held.</summary>
    public long Bytes => _pixels.Sum(p => (long)p.Length);

    /// <inheritdoc/>
    public int Count => _pixels.Length;

    /// <inheritdoc/>
    public LoadedImage Load(int index)
    {
        var (h, w, h0, w0) = _shapes[index];
        var mat = Mat.FromPixelData(h, w, MatType.CV_8UC3, Marshal.UnsafeAddrOfPinnedArrayElement(_pixels[index], 0));
        return new LoadedImage(mat, h0, w0);
    }

    /// <summary>Copies a BGR image's pixels row by row (it may be a non-continuous view).</summary>
    internal static void CopyPixels(Mat mat, Span<byte> destination)
    {
        var rowBytes = mat.Width * 3;
        if (mat.IsContinuous())
        {
            mat.AsSpan<byte>()[..(rowBytes * mat.Height)].CopyTo(destination);
            return;
        }
        using var continuous = mat.Clone();
        continuous.AsSpan<byte>()[..(rowBytes * mat.Height)].CopyTo(destination);
    }

    /// <inheritdoc/>
    public void Dispose() { }
}
