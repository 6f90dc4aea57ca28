namespace Osprey.Data;

/// <summary>Options of <see cref="DataLoader"/>.</summary>
/// <param name="ImageSize">Square output side (imgsz).</param>
/// <param name="BatchSize">Images per batch on this rank.</param>
/// <param name="Workers">Decode/augment threads.</param>
/// <param name="Seed">Seed of the shuffle and of every augmentation draw.</param>
/// <param name="Rank">This process's rank.</param>
/// <param name="WorldSize">Number of ranks.</param>
/// <param name="Cache">Keep decoded images in RAM or a shared memory-mapped file.</param>
/// <param name="Augment">Training augmentation (train loader only; null = Ultralytics defaults).</param>
/// <param name="Epochs">Total epochs (for <see cref="AugmentOptions.CloseMosaic"/>).</param>
/// <param name="PrefetchBatches">Batches prepared ahead (0 = 2 per worker, at least 2).</param>
/// <param name="CacheDirectory">Folder of the disk image cache (default <see cref="OspreyCacheDirectory.Root"/>).</param>
/// <param name="DropLast">Drop a last incomplete batch.</param>
/// <param name="SingleThreadedOpenCv">Turn OpenCV's own thread pool off (recommended when workers ≥ cores).</param>
/// <param name="MosaicBuffer">Ultralytics' mosaic buffer: partners from the last N positions of the shuffle (Ultralytics:
/// min(n, 8·batch, 1000), 128 at its default batch 16; fixed here so that a sample does not depend on the batch size), and with
/// <c>cache=false</c> that many recent decoded images kept (<see cref="RecentImageStore"/>); 0: partners uniformly from the
/// dataset, every image decoded each time.</param>
/// <param name="PinMemory">Collate into page-locked (pinned) host memory so that copies to a CUDA device can be asynchronous
/// (Ultralytics' <c>pin_memory</c>); where pinning fails (no CUDA) the loader falls back to ordinary memory and says why in
/// <see cref="DataLoader.PinMemoryError"/>. The batches' contents are the same either way.</param>
/// <param name="SampleDelay">Test hook: each worker sleeps this long per sample (emulates slow storage).</param>
/// <param name="DeviceAugment">Training loader: the workers only load the images and collate them as tiles with each sample's
/// plan (<see cref="TilePlan"/>; same draws, same labels); mosaic, affine, HSV, flips run as tensor ops on the device the batch
/// goes to (<see cref="Osprey.Data.DeviceAugment"/>, when the trainer asks for the images). Mixup is not supported there.</param>
public sealed record LoaderOptions(
    int ImageSize = 640,
    int BatchSize = 16,
    int Workers = 2,
    long Seed = 0,
    int Rank = 0,
    int WorldSize = 1,
    ImageCacheMode Cache = ImageCacheMode.None,
    AugmentOptions? Augment = null,
    int Epochs = 0,
    int PrefetchBatches = 0,
    string? CacheDirectory = null,
    bool DropLast = false,
    bool SingleThreadedOpenCv = true,
    int MosaicBuffer = 128,
    bool PinMemory = false,
    TimeSpan SampleDelay = default,
    bool DeviceAugment = false);
