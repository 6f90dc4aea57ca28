using Osprey.IO;
using OpenCvSharp;

namespace Osprey.Plotting;

/// <summary>Writes a BGR image as PNG atomically (encoded in memory, then <see cref="AtomicFile.Write"/>).</summary>
internal static class PngFile
{
    public static void Write(string path, Mat image)
    {
        if (!Cv2.ImEncode(".png", image, out byte[] bytes))
            throw new InvalidOperationException($"OpenCV could not encode {path} as PNG.");
        AtomicFile.Write(path, stream => stream.Write(bytes));
    }
}
