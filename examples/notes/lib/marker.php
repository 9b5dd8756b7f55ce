<?php
const NOTES_MARKER = 'v1.0.0';
