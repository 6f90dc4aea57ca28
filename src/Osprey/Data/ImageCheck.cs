using System.Buffers;
using OpenCvSharp;

namespace Osprey.Data;

/// <summary>Outcome of checking one image file.</summary>
public enum ImageStatus
{
    /// <summary>Decodes and is large enough.</summary>
    Ok,
    /// <summary>Unreadable, undecodable or truncated.</summary>
    Corrupt,
    /// <summary>A side is below <see cref="ImageCheck.MinSide"/> pixels.</summary>
    TooSmall,
}

/// <summary>Result of <see cref="ImageCheck.Check"/>.</summary>
public sealed record ImageCheckResult(ImageStatus Status, int Width, int Height, string? Problem);

/// <summary>Checks that an image file is complete and decodes (read-only).</summary>
public static class ImageCheck
{
    /// <summary>Smallest accepted side in pixels.</summary>
    public const int MinSide = 10;

    /// <summary>Reads and decodes the file; truncated JPEG/PNG files are corrupt.</summary>
    public static ImageCheckResult Check(string imagePath)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(imagePath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new(ImageStatus.Corrupt, 0, 0, $"cannot be read ({e.Message})");
        }
        if (bytes.Length == 0) return new(ImageStatus.Corrupt, 0, 0, "is empty");
        var truncation = TruncationProblem(bytes);
        if (truncation is not null) return new(ImageStatus.Corrupt, 0, 0, truncation);
        using var image = ImageDecoder.TryDecode(bytes);
        if (image is null || image.Empty()) return new(ImageStatus.Corrupt, 0, 0, "cannot be decoded");
        if (image.Width < MinSide || image.Height < MinSide)
            return new(ImageStatus.TooSmall, image.Width, image.Height, $"is {image.Width}x{image.Height}, a side is below {MinSide} px");
        return new(ImageStatus.Ok, image.Width, image.Height, null);
    }

    /// <summary>A JPEG must end with its EOI marker (trailing zero or whitespace padding allowed), a PNG with its IEND chunk.</summary>
    public static string? TruncationProblem(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
        {
            var end = bytes.Length;
            while (end > 2 && bytes[end - 1] is 0x00 or 0x0A or 0x0D or 0x20) end--;
            return end >= 2 && bytes[end - 2] == 0xFF && bytes[end - 1] == 0xD9 ? null : "is a truncated JPEG (no end marker)";
        }
        ReadOnlySpan<byte> pngMagic = [0x89, 0x50, 0x4E, 0x47];
        if (bytes.StartsWith(pngMagic))
        {
            ReadOnlySpan<byte> iend = [0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82];
            return bytes.Length >= 8 && bytes[^8..].SequenceEqual(iend) ? null : "is a truncated PNG (no IEND chunk)";
        }
        return null;
    }
}

/// <summary>OpenCV decode helpers (BGR, 8-bit, EXIF orientation applied).</summary>
public static class ImageDecoder
{
    /// <summary>Decodes bytes to a BGR image, or null when OpenCV cannot.</summary>
    public static Mat? TryDecode(byte[] bytes) => TryDecode(bytes.AsSpan());

    /// <summary>Decodes bytes to a BGR image, or null when OpenCV cannot.</summary>
    public static Mat? TryDecode(ReadOnlySpan<byte> bytes)
    {
        try
        {
            var mat = Cv2.ImDecode(bytes, ImreadModes.Color);
            if (mat.Empty()) { mat.Dispose(); return null; }
            return mat;
        }
        catch (OpenCVException)
        {
            return null;
        }
    }

    /// <summary>Reads and decodes a file; throws <see cref="InvalidDataException"/> naming it when that fails. The file's bytes
    /// go through a pooled buffer (no large-object allocation per image in the training loop).</summary>
    public static Mat Decode(string path)
    {
        using var handle = File.OpenHandle(path);
        var length = RandomAccess.GetLength(handle);
        if (length > Array.MaxLength) throw new InvalidDataException($"Image {path} is too large ({length} bytes).");
        var buffer = ArrayPool<byte>.Shared.Rent((int)length);
        try
        {
            var read = 0;
            while (read < length)
            {
                var n = RandomAccess.Read(handle, buffer.AsSpan(read, (int)length - read), read);
                if (n == 0) break; // shrank meanwhile: decode what is there
                read += n;
            }
            return (read > 0 ? TryDecode(buffer.AsSpan(0, read)) : null) ?? throw new InvalidDataException($"Image {path} cannot be decoded.");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
